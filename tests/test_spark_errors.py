"""Spark: paths that Spark or the driver cannot open are refused early, in a few lines.

An export under a scheme the cluster has no connector for, and scores that
``store=`` could not read back on the driver, are named with what to do,
before anything is computed; a local session keeps Spark's warehouse out of
the working directory. CI (``CRM_ML_FORBID_SKIPS=1``) fails these tests when
pyspark or Java is missing; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from project_settings import project_settings

from crm_ml.errors import ConfigError, StoreError, ValidationError
from crm_ml.store import Store

pytestmark = pytest.mark.spark


# ------------------------------------------------------------ an export Spark cannot read


@pytest.mark.parametrize(
    ("folder", "connector"),
    [
        ("nosuchfs://bucket/export", "Hadoop FileSystem for nosuchfs://"),
        ("gs://b/x", "gcs-connector"),
    ],
    ids=["made-up", "gs"],
)
def test_an_export_under_a_scheme_spark_cannot_read_names_scheme_and_remedy(
    spark: Any, folder: str, connector: str
) -> None:
    from crm_ml.spark import spark_tables

    scheme = folder.split("://")[0]
    with pytest.raises(StoreError) as caught:
        spark_tables(spark, folder)
    message = str(caught.value)
    assert message.startswith(
        f"Spark cannot read {folder}/customer: no FileSystem for scheme {scheme!r}"
    )
    assert connector in message and "copy the export" in message
    assert len(message) < 600  # not the 14,000-character Java stack
    assert "UnsupportedFileSystemException" in str(caught.value.__cause__)  # kept, chained


# ------------------------------------------------------------ scores store= cannot read back


@pytest.fixture
def no_model_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and stop) any step of score_on_spark that looks up or loads the model."""
    import crm_ml.models.tracking
    import crm_ml.spark.scoring

    calls: list[str] = []

    def refuse(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return record

    monkeypatch.setattr(crm_ml.spark.scoring, "scoring_target", refuse("scoring_target"))
    monkeypatch.setattr(crm_ml.models.tracking, "load_model", refuse("load_model"))
    return calls


@pytest.mark.parametrize(
    ("out_path", "later"),
    [
        (
            "s3a://bucket/crm/scores",
            "load_spark_scores(store, 's3://bucket/crm/scores', as_of=...)",
        ),
        ("dbfs:/mnt/crm/scores", "load_spark_scores(store, '/dbfs/mnt/crm/scores', as_of=...)"),
        ("nosuchfs://x/scores", "load_spark_scores(store, <the folder as this machine sees it>"),
    ],
    ids=["s3a", "dbfs", "made-up"],
)
def test_scores_the_store_could_not_read_back_are_refused_before_the_model_is_loaded(
    spark: Any, no_model_work: list[str], tmp_path: Path, out_path: str, later: str
) -> None:
    from crm_ml.spark import score_on_spark

    store = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}", create=True)
    features = spark.createDataFrame([("C1", 1.0)], "customer_id string, recency_days double")
    with pytest.raises(ConfigError) as caught:
        score_on_spark(
            spark, features, "crm-churn@champion", project_settings(tmp_path),
            out_path=out_path, as_of="2026-01-01", store=store,
        )  # fmt: skip
    message = str(caught.value)
    assert f"pyarrow, which cannot open {out_path}" in message
    assert "Nothing was computed" in message and later in message
    assert no_model_work == []


def test_a_local_out_path_passes_the_read_back_check() -> None:
    from crm_ml.spark.loading import pyarrow_problem

    assert pyarrow_problem("/shared/crm/scores") is None
    assert pyarrow_problem("relative/scores") is None
    assert pyarrow_problem("file:///shared/crm/scores") is None
    assert "Unrecognized filesystem type" in (pyarrow_problem("s3a://bucket/scores") or "")


def test_loading_scores_by_their_spark_name_says_the_name_to_use(tmp_path: Path) -> None:
    from crm_ml.spark import load_spark_scores

    store = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}", create=True)
    with pytest.raises(ValidationError, match=r"reads that folder as s3://bucket/scores: pass"):
        load_spark_scores(store, "s3a://bucket/scores", as_of="2026-01-01")


# ------------------------------------------------------------ the warehouse folder


def test_a_local_session_keeps_its_warehouse_out_of_the_working_directory(spark: Any) -> None:
    from crm_ml.spark import session_conf

    local = session_conf(
        "local[2]", shuffle_partitions=None, driver_memory=None, local_ip=None, conf=None
    )
    assert local["spark.sql.warehouse.dir"].startswith(tempfile.gettempdir())
    cluster = session_conf(
        "yarn", shuffle_partitions=None, driver_memory=None, local_ip=None, conf=None
    )
    assert "spark.sql.warehouse.dir" not in cluster  # the cluster's own stays
    # Looking past the temporary views into the catalog makes Spark create the warehouse.
    assert not spark.catalog.tableExists("no_such_table")
    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    assert Path(warehouse).is_relative_to(tempfile.gettempdir())
    assert not (Path.cwd() / "spark-warehouse").exists()
