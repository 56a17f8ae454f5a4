"""Spark refuses the dates the single machine refuses, and scores are dated by their features.

One local Spark session and the hand-written sample store. Most refusals are
checked against an empty MLflow registry: a ValidationError there (not "no
registered model") shows the date was checked before the model was loaded.
CI (``CRM_ML_FORBID_SKIPS=1``) fails these tests when pyspark or Java is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from features.rows import insert_rows
from features.sample import AS_OF, sample_tables
from models.synthetic import TINY, make_training_frame
from project_settings import project_settings
from sqlalchemy import func, select

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features import build_feature_file, customer_features
from crm_ml.store import Store, init_store
from crm_ml.store.schema import Score

pytestmark = pytest.mark.spark


#: A date the scores must not be stamped with: the features are built at AS_OF.
OTHER_DAY = "2024-06-01"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("dates_store")
    st = Store(f"duckdb:///{folder / 'crm.duckdb'}", create=True)
    init_store(st)
    insert_rows(st, sample_tables())
    yield st
    st.dispose()


@pytest.fixture(scope="module")
def tables(spark: Any, store: Store, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from crm_ml.spark import export_tables, spark_tables

    folder = tmp_path_factory.mktemp("dates_parquet")
    export_tables(store, folder)
    return spark_tables(spark, folder)


@pytest.fixture(scope="module")
def features(tables: Any) -> Any:
    """The value features at AS_OF, kept on Spark."""
    from crm_ml.spark import spark_features

    return spark_features(tables, AS_OF, groups=["value"])


@pytest.fixture
def no_models(tmp_path: Path) -> Settings:
    """Settings with an empty MLflow registry: loading any model would fail."""
    return project_settings(tmp_path / "project")


def _score_rows(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Score.__table__)).scalar_one())


@pytest.mark.parametrize("as_of", ["2030-01-01", "2019-01-01"], ids=["after", "before"])
def test_a_date_outside_the_data_is_refused_as_on_one_machine(
    tables: Any, store: Store, as_of: str
) -> None:
    from crm_ml.spark import spark_features

    with pytest.raises(ValidationError) as on_one_machine:
        customer_features(store, as_of)
    with pytest.raises(ValidationError) as on_spark:
        spark_features(tables, as_of)
    assert str(on_spark.value) == str(on_one_machine.value)
    # The single machine's escape hatch works on Spark too.
    frame = spark_features(tables, as_of, groups=["value"], allow_outside_data=True)
    assert "as_of" in frame.columns


def test_features_carry_their_date_through_parquet(
    spark: Any, features: Any, store: Store, tmp_path: Path
) -> None:
    from crm_ml.spark import collect_features
    from crm_ml.spark.features import features_date

    assert features_date(features) == AS_OF  # from the schema: nothing computed
    features.write.parquet(str(tmp_path / "features"))
    assert features_date(spark.read.parquet(str(tmp_path / "features"))) == AS_OF
    collected = collect_features(pd.read_parquet(tmp_path / "features"), groups=["value"])
    expected = customer_features(store, AS_OF, groups=["value"])
    assert collected.attrs["as_of"] == expected.attrs["as_of"] == AS_OF.isoformat()


def _features_source(kind: str, features: Any, store: Store, folder: Path) -> Any:
    """The AS_OF features as score_on_spark takes them: a frame, or a Parquet path."""
    if kind == "spark frame":
        return features
    path = folder / "features"
    if kind == "spark parquet":
        features.write.parquet(str(path))
    else:  # the single machine's file: the date is in the pandas metadata only
        path = folder / "features.parquet"
        build_feature_file(store, AS_OF, path, groups=["value"], progress=False)
    return path


@pytest.mark.parametrize("kind", ["spark frame", "spark parquet", "build_feature_file"])
def test_scoring_features_of_another_date_is_refused_before_anything_is_written(
    spark: Any, features: Any, store: Store, no_models: Settings, tmp_path: Path, kind: str
) -> None:
    from crm_ml.spark import score_on_spark

    source = _features_source(kind, features, store, tmp_path)
    before = _score_rows(store)
    with pytest.raises(ValidationError, match=r"built as of 2024-07-01 .* as of 2024-06-01"):
        score_on_spark(
            spark, source, "crm-churn@champion", no_models,
            out_path=tmp_path / "scores", as_of=OTHER_DAY, store=store,
        )  # fmt: skip
    assert not (tmp_path / "scores").exists()
    assert _score_rows(store) == before


def test_a_bad_date_is_refused_before_the_model_is_loaded(
    spark: Any, features: Any, no_models: Settings, tmp_path: Path
) -> None:
    from crm_ml.spark import score_on_spark

    with pytest.raises(ConfigError, match="as_of='2026-13-01' is not a date"):
        score_on_spark(
            spark, features, "crm-churn@champion", no_models,
            out_path=tmp_path / "scores", as_of="2026-13-01",
        )  # fmt: skip
    assert not (tmp_path / "scores").exists()


def test_scores_take_the_features_date_when_as_of_is_left_out(spark: Any, tmp_path: Path) -> None:
    """A tiny churn champion scores dated features; the store files them under that date."""
    from crm_ml.models.scoring import read_scores
    from crm_ml.models.training import train_model
    from crm_ml.spark import score_on_spark
    from crm_ml.spark.features import with_features_date

    settings = project_settings(tmp_path / "project", currency="EUR")
    frame = make_training_frame(n=600)
    result = train_model("churn", frame, settings, horizon_days=90, model_params=TINY)
    assert result.registered.alias == "champion"
    latest = frame[frame["as_of"] == frame["as_of"].max()]
    rows = latest.drop(columns=["as_of", "churned", "purchased"])
    dated = with_features_date(spark.createDataFrame(rows), datetime(2024, 10, 1))
    st = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}", create=True)
    init_store(st)
    score_on_spark(
        spark, dated, "crm-churn@champion", settings, out_path=tmp_path / "scores", store=st
    )
    stored = read_scores(st, model_name="crm-churn", as_of="2024-10-01")
    st.dispose()
    assert len(stored) == len(rows)
    assert set(pd.read_parquet(tmp_path / "scores")["as_of"]) == {pd.Timestamp("2024-10-01")}


def test_erased_customers_from_the_export_are_said_to_be_the_exports(
    spark: Any, features: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Without store=, the log says the list is the export's and how to get the current one."""
    from crm_ml.spark.scoring import _not_erased

    inputs = features.select("customer_id")
    with caplog.at_level(logging.WARNING, logger="crm_ml.spark.scoring"):
        _not_erased(spark, inputs, None)
    assert "as of the export" in caplog.text
    assert "Pass store= to use the store's current list" in caplog.text
