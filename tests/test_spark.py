"""Spark: the same feature and label definitions give DuckDB's frames; scoring on Spark.

One local Spark session serves every test (start-up dominates). CI
(``CRM_ML_FORBID_SKIPS=1``) fails these tests when pyspark or Java is
missing; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from features.rows import insert_rows
from features.sample import AS_OF, random_tables, sample_tables
from models.synthetic import TINY, make_training_frame
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, NotFoundError, ValidationError
from crm_ml.features import (
    churn_labels,
    customer_features,
    purchase_labels,
    tier_downgrade_labels,
)
from crm_ml.store import Store, init_store

pytestmark = pytest.mark.spark


def _tables() -> dict[str, list[dict[str, Any]]]:
    """The hand-written sample store and a seeded random one, side by side (disjoint ids)."""
    tables = sample_tables()
    for name, rows in random_tables(seed=7, customers=60).items():
        if name not in ("product", "store_location", "tier"):  # the same catalogue
            tables.setdefault(name, []).extend(rows)
    return tables


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("spark_store")
    st = Store(f"duckdb:///{folder / 'crm.duckdb'}", create=True)
    init_store(st)
    insert_rows(st, _tables())
    yield st
    st.dispose()


@pytest.fixture(scope="module")
def parquet_dir(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crm_ml.spark import export_tables

    folder = tmp_path_factory.mktemp("spark_parquet")
    export_tables(store, folder)
    return folder


@pytest.fixture(scope="module")
def tables(spark: Any, parquet_dir: Path) -> Any:
    from crm_ml.spark import spark_tables

    return spark_tables(spark, parquet_dir)


@pytest.fixture(scope="module")
def duckdb_features(store: Store) -> pd.DataFrame:
    return customer_features(store, AS_OF)


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.dtypes) == list(expected.dtypes)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)


def test_features_on_spark_equal_duckdbs(tables: Any, duckdb_features: pd.DataFrame) -> None:
    assert 40 < len(duckdb_features) < 60  # 5 sample + ~45 random customers exist at AS_OF
    _same(customer_features(tables, AS_OF), duckdb_features)


def test_spark_numbers_the_population_without_a_window_over_all_of_it(
    tables: Any, duckdb_features: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spark runs a window over the whole population in one partition, and warns on every plan."""
    import crm_ml.features.align as align
    from crm_ml.features import FeatureWindows
    from crm_ml.features.backend import fetch, temporary_table
    from crm_ml.features.identity import open_snapshot

    materialised: list[str] = []

    def recording(con: Any, expr: Any, prefix: str) -> Any:
        materialised.append(str(tables.compile(expr)))
        return temporary_table(con, expr, prefix)

    monkeypatch.setattr(align, "temporary_table", recording)
    with (
        open_snapshot(tables, "pyspark", AS_OF, FeatureWindows()) as snap,
        align.numbered_population(snap) as index,
    ):
        numbered = fetch(snap.people.select("customer_id", align.POSITION))
    windows = re.findall(r"OVER\s*\(\s*(\w+ BY)", " ".join(materialised))
    assert windows and set(windows) == {"PARTITION BY"}
    # Positions 0..n-1, one per customer, and the index lists the ids in position order.
    assert sorted(numbered[align.POSITION]) == list(range(len(duckdb_features)))
    assert list(index[numbered[align.POSITION]]) == list(numbered["customer_id"])
    assert sorted(index) == list(duckdb_features.index)


def test_features_kept_on_spark_equal_duckdbs(
    tables: Any, duckdb_features: pd.DataFrame, tmp_path: Path
) -> None:
    from crm_ml.spark import collect_features, spark_features

    frame = spark_features(tables, AS_OF)
    assert dict(frame.dtypes)["orders_30d"] == "bigint"
    frame.write.parquet(str(tmp_path / "features"))
    _same(collect_features(pd.read_parquet(tmp_path / "features")), duckdb_features)


@pytest.mark.parametrize(
    "labels",
    [
        lambda source: churn_labels(source, AS_OF, 90),
        lambda source: churn_labels(source, AS_OF, 30, buyers_only=False),
        lambda source: purchase_labels(source, AS_OF, 60, category="food"),
        lambda source: tier_downgrade_labels(source, AS_OF, 120),
    ],
    ids=["churn", "churn_everyone", "purchase_food", "tier_downgrade"],
)
def test_labels_on_spark_equal_duckdbs(tables: Any, store: Store, labels: Any) -> None:
    expected = labels(store)
    assert expected.iloc[:, 0].any() and not expected.iloc[:, 0].all()
    got = labels(tables)
    assert got.index.dtype == expected.index.dtype
    pd.testing.assert_frame_equal(got, expected)


def test_spark_tables_needs_one_source(spark: Any, parquet_dir: Path, tmp_path: Path) -> None:
    from crm_ml.spark import spark_tables

    with pytest.raises(ConfigError, match="exactly one of parquet_dir"):
        spark_tables(spark)
    with pytest.raises(ConfigError, match="exactly one of parquet_dir"):
        spark_tables(spark, parquet_dir, database="crm")
    # An export made before the identity tables were exported (crm-ml export parquet).
    shutil.copytree(parquet_dir, tmp_path / "old", ignore=shutil.ignore_patterns("customer_merge"))
    with pytest.raises(NotFoundError, match=r"No exported table 'customer_merge' .*export_tables"):
        spark_tables(spark, tmp_path / "old")


def test_session_settings_for_local_and_cluster_masters() -> None:
    from crm_ml.spark import session_conf

    local = session_conf(
        "local[2]", shuffle_partitions=None, driver_memory="2g", local_ip="127.0.0.1", conf=None
    )
    assert local["spark.sql.session.timeZone"] == "UTC"
    assert local["spark.sql.shuffle.partitions"] == "8"
    assert local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.driver.memory"] == "2g"
    assert not any("jars" in key for key in local)  # nothing is fetched at run time
    cluster = session_conf(
        "yarn",
        shuffle_partitions=None,
        driver_memory=None,
        local_ip="127.0.0.1",
        conf={"spark.sql.shuffle.partitions": "64"},
    )
    assert cluster["spark.sql.shuffle.partitions"] == "64"
    assert "spark.driver.bindAddress" not in cluster
    assert "spark.driver.extraJavaOptions" not in cluster  # the cluster's own JVM options stay


def test_a_source_must_be_a_store_or_an_ibis_backend() -> None:
    with pytest.raises(ConfigError, match="expected a Store or an Ibis backend"):
        customer_features("duckdb:///crm.duckdb", AS_OF)


def test_crm_ml_spark_imports_without_pyspark() -> None:
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import crm_ml.spark\n"
        "try:\n    crm_ml.spark.spark_session()\n"
        "except crm_ml.errors.ConfigError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'crm_ml[spark]'" in out.stdout


# --------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Any, pd.DataFrame]:
    """A tiny churn model registered as champion in a throwaway MLflow store."""
    from crm_ml.models.training import train_model

    root = tmp_path_factory.mktemp("spark_project")
    settings = project_settings(root, currency="EUR")
    # 600 customers: at 300 the recency rule out-ranks this tiny model, which is then
    # registered as challenger only (a model a baseline beats is never made champion).
    frame = make_training_frame(n=600)
    result = train_model("churn", frame, settings, horizon_days=90, model_params=TINY)
    assert result.registered.alias == "champion"
    latest = frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")
    return settings, result.model, latest.drop(columns=["as_of", "churned", "purchased"])


def test_scores_on_spark_equal_local_scoring(
    spark: Any, registered: tuple[Settings, Any, pd.DataFrame], tmp_path: Path
) -> None:
    from crm_ml.models.phrases import PhraseContext
    from crm_ml.models.scoring import score_batches
    from crm_ml.spark import ReasonOptions, score_on_spark

    settings, model, features = registered
    features.to_parquet(tmp_path / "features.parquet")
    # The same machinery as score_batches with its own defaults: English, no tier names.
    summary = score_on_spark(
        spark,
        tmp_path / "features.parquet",
        "crm-churn@champion",
        settings,
        out_path=tmp_path / "scores",
        as_of="2024-10-01",
        options=ReasonOptions(language="en"),
        tier_names={},
    )
    got = pd.read_parquet(tmp_path / "scores").set_index("customer_id").sort_index()
    local = score_batches(model, features, context=PhraseContext(currency="EUR"))
    expected = pd.concat(list(local)).set_index("customer_id").sort_index()
    np.testing.assert_allclose(got["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert got["band"].tolist() == expected["band"].tolist()
    assert got["reasons"].tolist() == expected["reasons"].tolist()
    assert json.loads(got["reasons"].iloc[0])[0]["text"]
    assert set(got["model_version"]) == {"1"} and set(got["model_name"]) == {"crm-churn"}
    assert (got["as_of"] == pd.Timestamp("2024-10-01")).all()
    assert summary["customers"].sum() == len(features)
    assert summary.index.tolist() == ["high", "medium", "low"]


def test_scoring_on_spark_refuses_missing_features(
    spark: Any, registered: tuple[Settings, Any, pd.DataFrame], tmp_path: Path
) -> None:
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    frame = spark.createDataFrame(features.drop(columns="recency_days").reset_index())
    with pytest.raises(ValidationError, match="missing: recency_days"):
        score_on_spark(spark, frame, "crm-churn@champion", settings, out_path=tmp_path / "s")


def _tier_store(folder: Path, tiers: list[dict[str, Any]]) -> Store:
    """A small store holding only a tier table: what reasons read from a store."""
    st = Store(f"duckdb:///{folder / 'crm.duckdb'}", create=True)
    init_store(st)
    insert_rows(st, {"tier": tiers})
    return st


def _local_reasons(st: Store, settings: Settings, features: pd.DataFrame) -> pd.Series:
    """The reasons score_customers writes with its defaults, as the single machine does."""
    from crm_ml.models.scoring import read_scores, score_customers

    score_customers(st, features, "2024-10-01", model="crm-churn@champion", settings=settings)
    return read_scores(st, model_name="crm-churn", as_of="2024-10-01")["reasons"]


def _texts(reasons: pd.Series) -> list[str]:
    return [item["text"] for raw in reasons for item in json.loads(raw)]


def test_spark_reasons_equal_score_customers_for_the_same_store(
    spark: Any, tables: Any, registered: tuple[Settings, Any, pd.DataFrame], tmp_path: Path
) -> None:
    """Default language and tier names on Spark are the single machine's (finding B9).

    The session holds the sample store's tables (``tables``: its ``tier`` view); the
    single machine scores against a store with the same tier table.
    """
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    assert settings.language == "zh"
    st = _tier_store(tmp_path, sample_tables()["tier"])
    expected = _local_reasons(st, settings, features)
    st.dispose()
    features.to_parquet(tmp_path / "features.parquet")
    score_on_spark(
        spark, tmp_path / "features.parquet", "crm-churn@champion", settings,
        out_path=tmp_path / "scores", as_of="2024-10-01",
    )  # fmt: skip
    got = pd.read_parquet(tmp_path / "scores").set_index("customer_id")["reasons"]
    assert got.sort_index().tolist() == expected.sort_index().tolist()
    texts = _texts(got)
    assert any(t.startswith(("当前等级silver", "当前等级gold")) for t in texts)  # named, in zh
    assert not any(t.startswith(("tier ", "downgraded", "upgraded")) for t in texts)


def test_spark_reasons_name_tiers_as_the_given_store_does(
    spark: Any, tables: Any, registered: tuple[Settings, Any, pd.DataFrame], tmp_path: Path
) -> None:
    """With store=, its tiers name the reasons (the Chinese labels), not the session's."""
    from crm_ml.models.scoring import read_scores
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    tiers = [
        dict(tier_id="t0", name="member", label="普通会员", level=0, min_spend_12m=0.0),
        dict(tier_id="t1", name="silver", label="银卡会员", level=1, min_spend_12m=500.0),
        dict(tier_id="t2", name="gold", label="金卡会员", level=2, min_spend_12m=2000.0),
        dict(tier_id="t3", name="black", label="黑卡会员", level=3, min_spend_12m=9000.0),
    ]
    st = _tier_store(tmp_path, tiers)
    expected = _local_reasons(st, settings, features)
    features.to_parquet(tmp_path / "features.parquet")
    score_on_spark(
        spark, tmp_path / "features.parquet", "crm-churn@champion", settings,
        out_path=tmp_path / "scores", as_of="2024-10-01", store=st,
    )  # fmt: skip
    got = read_scores(st, model_name="crm-churn", as_of="2024-10-01")["reasons"]
    st.dispose()
    assert got.tolist() == expected.tolist()
    texts = _texts(got)
    assert any("金卡会员" in t or "银卡会员" in t for t in texts)
    assert not any("gold" in t or "silver" in t for t in texts)


# --------------------------------------------------------------------------- scores into the store


@pytest.fixture(scope="module")
def loaded(
    spark: Any,
    registered: tuple[Settings, Any, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, Path, pd.DataFrame]]:
    """Scores written by Spark and loaded into a fresh store in the same call."""
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    folder = tmp_path_factory.mktemp("spark_scores")
    features.to_parquet(folder / "features.parquet")
    st = Store(f"duckdb:///{folder / 'crm.duckdb'}", create=True)
    init_store(st)
    summary = score_on_spark(
        spark,
        folder / "features.parquet",
        "crm-churn@champion",
        settings,
        out_path=folder / "scores",
        as_of="2024-10-01",
        store=st,
    )
    yield st, folder / "scores", summary
    st.dispose()


def test_spark_scores_land_in_the_score_table(loaded: tuple[Store, Path, pd.DataFrame]) -> None:
    from crm_ml.models.scoring import read_scores

    st, path, summary = loaded
    written = pd.read_parquet(path).set_index("customer_id").sort_index()
    got = read_scores(st, model_name="crm-churn", as_of="2024-10-01")
    assert got.index.tolist() == written.index.tolist()
    assert got["probability"].tolist() == written["probability"].tolist()
    assert got["band"].tolist() == written["band"].tolist()
    assert got["reasons"].tolist() == written["reasons"].tolist()
    assert json.loads(got["reasons"].iloc[0])[0]["text"]
    assert set(got["model_version"]) == {"1"}
    # scored_at is when scoring started, not when the rows were loaded afterwards.
    written_at = min(f.stat().st_mtime for f in path.glob("*.parquet"))
    (scored_at,) = set(got["scored_at"])
    assert scored_at.replace(tzinfo=UTC).timestamp() <= written_at
    assert summary["customers"].sum() == len(written) == 600
    assert (
        summary["customers"].tolist()
        == written["band"].value_counts().reindex(["high", "medium", "low"], fill_value=0).tolist()
    )


def test_reloading_spark_scores_replaces_them(loaded: tuple[Store, Path, pd.DataFrame]) -> None:
    from crm_ml.models.scoring import read_scores
    from crm_ml.spark import load_spark_scores

    st, path, _ = loaded
    before = read_scores(st, model_name="crm-churn", as_of="2024-10-01")
    load_spark_scores(st, path, scored_at=datetime(2024, 10, 2), batch_rows=30)
    after = read_scores(st, model_name="crm-churn", as_of="2024-10-01")
    assert set(after["scored_at"]) == {datetime(2024, 10, 2)}
    pd.testing.assert_frame_equal(after.drop(columns="scored_at"), before.drop(columns="scored_at"))


def test_spark_scores_missing_a_column_are_refused(
    spark: Any, loaded: tuple[Store, Path, pd.DataFrame], tmp_path: Path
) -> None:
    from crm_ml.models.scoring import read_scores
    from crm_ml.spark import load_spark_scores

    st, path, _ = loaded
    spark.read.parquet(str(path)).drop("reasons").write.parquet(str(tmp_path / "bad"))
    before = read_scores(st, model_name="crm-churn", as_of="2024-10-01")
    with pytest.raises(ValidationError, match=r"bad: column 'reasons' is missing; expected text"):
        load_spark_scores(st, tmp_path / "bad")
    pd.testing.assert_frame_equal(
        read_scores(st, model_name="crm-churn", as_of="2024-10-01"), before
    )


def test_scoring_into_the_store_needs_as_of(
    spark: Any, registered: tuple[Settings, Any, pd.DataFrame], store: Store, tmp_path: Path
) -> None:
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    with pytest.raises(ConfigError, match=r"store=\.\.\.\) needs as_of"):
        score_on_spark(
            spark, features, "crm-churn@champion", settings, out_path=tmp_path, store=store
        )


def test_spark_churn_scores_only_buyers_under_the_champions_key(
    spark: Any, registered: tuple[Settings, Any, pd.DataFrame], tmp_path: Path
) -> None:
    """As score_customers: never-buyers get no churn score; the champion writes crm-churn."""
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    features = features.copy()
    never = features.index[:25]
    features.loc[never, "orders_lifetime"] = 0
    features.to_parquet(tmp_path / "features.parquet")
    score_on_spark(
        spark, tmp_path / "features.parquet", "crm-churn/1", settings,
        out_path=tmp_path / "scores",
    )  # fmt: skip
    got = pd.read_parquet(tmp_path / "scores")
    assert len(got) == len(features) - len(never)
    assert not got["customer_id"].isin(never).any()
    assert set(got["model_name"]) == {"crm-churn"}  # v1 is the champion: production


def test_spark_scoring_leaves_out_customers_erased_on_request(
    spark: Any, registered: tuple[Settings, Any, pd.DataFrame], tmp_path: Path
) -> None:
    """As score_customers: an erased person's id gets no score, in the Parquet or the store."""
    from customer_helpers import add_customers

    from crm_ml.erasure import erase_customer
    from crm_ml.models.scoring import read_scores
    from crm_ml.spark import score_on_spark

    settings, _, features = registered
    erased = [str(c) for c in features.index[:2]]
    st = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}", create=True)
    init_store(st)
    add_customers(st, [str(c) for c in features.index])
    for customer in erased:
        erase_customer(st, customer, actor="合规官", reason="ticket DPO-17")
    features.to_parquet(tmp_path / "features.parquet")
    score_on_spark(
        spark, tmp_path / "features.parquet", "crm-churn@champion", settings,
        out_path=tmp_path / "scores", as_of="2024-10-01", store=st,
    )  # fmt: skip
    written = pd.read_parquet(tmp_path / "scores")
    stored = read_scores(st, model_name="crm-churn", as_of="2024-10-01")
    st.dispose()
    assert len(written) == len(stored) == len(features) - len(erased)
    assert not written["customer_id"].isin(erased).any()
    assert not stored.index.isin(erased).any()


def test_a_training_set_on_spark_leaves_out_erased_customers_as_duckdbs_does(
    spark: Any, parquet_dir: Path, tmp_path: Path
) -> None:
    """The erased_customer view that spark_tables registers keeps them out of training too."""
    from crm_ml.erasure import erase_customer
    from crm_ml.features import training_frame
    from crm_ml.spark import export_tables, spark_tables

    st = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}", create=True)
    init_store(st)
    insert_rows(st, sample_tables())
    erase_customer(st, "c1", actor="合规官", reason="ticket DPO-17")
    export_tables(st, tmp_path / "parquet")
    expected = training_frame(st, ["2024-05-01"], 30, 30, groups=["value"])
    st.dispose()
    try:
        moved = spark_tables(spark, tmp_path / "parquet")
        got = training_frame(moved, ["2024-05-01"], 30, 30, groups=["value"])
    finally:
        spark_tables(spark, parquet_dir)  # the views the module's other tests read
    assert (got.erased, expected.erased) == (1, 1)
    pd.testing.assert_frame_equal(got.frame, expected.frame)
