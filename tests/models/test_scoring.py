from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from project_settings import project_settings
from sqlalchemy import func, insert, select, update
from store_urls import POSTGRES_URL, drop_postgres_database, make_store_url

from crm_ml.errors import ConfigError, NotFoundError, ValidationError
from crm_ml.models.estimators import ChurnModel
from crm_ml.models.scoring import (
    read_scores,
    replace_scores,
    risk_band,
    score_batches,
    score_customers,
    tier_names_from_store,
)
from crm_ml.store import Store, init_store
from crm_ml.store.purges import record_purge
from crm_ml.store.schema import Customer, CustomerMerge, Score, Tier

from .synthetic import TINY, make_snapshot

FEATURES = [
    "recency_days",
    "interpurchase_mean_days",
    "orders_lifetime",
    "complaints_90d",
    "city_tier",
]


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    train = make_snapshot(pd.Timestamp("2024-01-01"), 400, seed=1)
    cal = make_snapshot(pd.Timestamp("2024-04-01"), 300, seed=2)
    return ChurnModel(**TINY).fit(
        train[FEATURES], train["churned"], calibration=(cal[FEATURES], cal["churned"])
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    snap = make_snapshot(pd.Timestamp("2024-07-01"), 250, seed=3)
    return snap.set_index("customer_id")[FEATURES]


def count_rows(store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Score.__table__)).scalar_one())


def test_risk_band_thresholds() -> None:
    p = np.array([0.0, 0.39, 0.4, 0.69, 0.7, 1.0])
    assert risk_band(p).tolist() == ["low", "low", "medium", "medium", "high", "high"]
    assert risk_band(p, (0.5, 0.1)).tolist() == ["low", "medium", "medium", "high", "high", "high"]
    with pytest.raises(ValidationError, match="Band thresholds"):
        risk_band(p, (0.2, 0.5))


def test_rescoring_a_date_replaces_its_scores(store, model, features) -> None:
    as_of = datetime(2024, 7, 1)
    first = score_customers(store, features, as_of, model=model, batch_size=100)
    assert first["customers"].sum() == 250
    assert count_rows(store) == 250
    # Same date again (another batch size, a newer model version): replaced, not duplicated.
    score_customers(store, features, as_of, model=model, batch_size=60, language="zh")
    assert count_rows(store) == 250
    # Another date is kept alongside.
    score_customers(store, features.head(10), datetime(2024, 8, 1), model=model)
    assert count_rows(store) == 260
    stored = read_scores(store, model_name="crm-churn", as_of=as_of)
    assert stored.index.tolist() == sorted(features.index)
    expected = model.predict_proba(features.sort_index())[:, 1]
    np.testing.assert_allclose(stored["probability"].to_numpy(), expected, rtol=1e-9)
    assert set(stored["model_version"]) == {"local"}
    reasons = json.loads(stored["reasons"].iloc[0])
    keys = {"feature", "text", "actionable", "direction", "contribution"}
    assert reasons and keys == set(reasons[0])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in reasons[0]["text"])  # the zh run replaced it


def test_a_date_a_retention_purge_removed_is_not_scored_again(duckdb_store, model, features):
    purged_at = datetime(2024, 9, 1, 8, 30)
    with duckdb_store.begin() as conn:
        record_purge(conn, purged_at, datetime(2024, 7, 1), {"score": 3}, actor="dpo", reason="R-7")
    with pytest.raises(ValidationError, match=(
        r"Cannot make crm-churn scores as of 2024-06-30: a retention purge on 2024-09-01 08:30 "
        r"UTC by dpo \(R-7\) deleted everything dated before 2024-07-01 00:00"
    )):  # fmt: skip
        score_customers(duckdb_store, features, "2024-06-30", model=model)
    assert count_rows(duckdb_store) == 0
    summary = score_customers(duckdb_store, features, "2024-07-01", model=model)  # the date itself
    assert summary["customers"].sum() == count_rows(duckdb_store) > 0


def test_failed_scoring_leaves_previous_scores(duckdb_store, model, features) -> None:
    score_customers(duckdb_store, features, "2024-07-01", model=model, attribution="path")
    broken = features.drop(columns="complaints_90d")
    with pytest.raises(ValidationError, match="complaints_90d"):
        score_customers(duckdb_store, broken, "2024-07-01", model=model)
    assert count_rows(duckdb_store) == 250


def test_duplicate_customers_are_refused(duckdb_store, model, features) -> None:
    doubled = pd.concat([features.head(2), features.head(1)])
    with pytest.raises(ValidationError, match="more than once"):
        score_customers(duckdb_store, doubled, "2024-07-01", model=model)


def test_registry_reference_needs_settings(duckdb_store, features) -> None:
    with pytest.raises(ValidationError, match="needs settings"):
        score_customers(duckdb_store, features, "2024-07-01", model="crm-churn@champion")


def test_progress_bar_counts_the_customers_scored(duckdb_store, model, features, capsys) -> None:
    score_customers(
        duckdb_store, features, "2024-07-01", model=model, batch_size=100, progress=True
    )
    bar = capsys.readouterr().err
    assert "scoring crm-churn vlocal" in bar and "250/250" in bar
    score_customers(duckdb_store, features, "2024-07-01", model=model)
    assert capsys.readouterr().err == ""  # off by default (notebooks, reports)


TIER_FEATURES = [*FEATURES, "tier_level", "days_since_tier_change", "last_tier_change_direction"]


def first_reason(store, as_of: str = "2024-07-01") -> str:
    stored = read_scores(store, model_name="crm-churn", as_of=as_of)
    return json.loads(stored["reasons"].iloc[0])[0]["text"]


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_an_empty_frame_is_refused_and_the_stored_scores_kept(duckdb_store, model, features):
    score_customers(duckdb_store, features, "2024-07-01", model=model)
    with pytest.raises(
        ValidationError, match="No customers to score with crm-churn as of 2024-07-01"
    ):
        score_customers(duckdb_store, features.iloc[:0], "2024-07-01", model=model)
    assert count_rows(duckdb_store) == 250


def test_fewer_customers_than_the_stored_run_need_allow_fewer(duckdb_store, model, features):
    score_customers(duckdb_store, features, "2024-07-01", model=model)
    with pytest.raises(
        ValidationError,
        match=r"crm-churn already has 250 scores as of 2024-07-01, and these features cover 200 "
        r"customers: .* at least 50 others would be deleted\. .*allow_fewer=True",
    ):
        score_customers(duckdb_store, features.head(200), "2024-07-01", model=model)
    assert count_rows(duckdb_store) == 250
    score_customers(duckdb_store, features.head(200), "2024-07-01", model=model, allow_fewer=True)
    assert count_rows(duckdb_store) == 200
    # The whole population again: a plain re-run, more customers is fine.
    score_customers(duckdb_store, features, "2024-07-01", model=model)
    assert count_rows(duckdb_store) == 250


def test_a_full_rescore_after_a_merge_drops_the_merged_customers_score(
    duckdb_store, model, features
):
    people = [
        {"customer_id": cid, "created_at": datetime(2024, 1, 1), "status": "active"}
        for cid in features.index
    ]
    with duckdb_store.begin() as conn:
        conn.execute(insert(Customer), people)
    score_customers(duckdb_store, features, "2024-07-01", model=model)
    merged, survivor = features.index[0], features.index[1]
    with duckdb_store.begin() as conn:
        conn.execute(
            update(Customer)
            .where(Customer.customer_id == merged)
            .values(status="merged", merged_into=survivor)
        )
        merge = {"merged_id": merged, "surviving_id": survivor, "reason": "same phone"}
        conn.execute(insert(CustomerMerge), [{**merge, "merged_at": datetime(2024, 7, 2)}])
    # The population no longer holds the merged record: no opt-in needed.
    score_customers(duckdb_store, features.drop(index=merged), "2024-07-01", model=model)
    assert count_rows(duckdb_store) == 249
    with pytest.raises(ValidationError, match=r"already has 249 scores .* cover 248 customers"):
        score_customers(duckdb_store, features.iloc[2:], "2024-07-01", model=model)


def test_features_built_for_another_date_are_refused(duckdb_store, model, features):
    built = features.copy()
    built.attrs["as_of"] = "2024-06-01T00:00:00"
    with pytest.raises(
        ValidationError, match="built as of 2024-06-01 but are being scored as of 2024-07-01"
    ):
        score_customers(duckdb_store, built.head(20), "2024-07-01", model=model)
    assert count_rows(duckdb_store) == 0
    score_customers(duckdb_store, built, "2024-06-01", model=model)
    assert count_rows(duckdb_store) == 250


def test_a_date_that_is_not_one_is_a_config_error(duckdb_store, model, features):
    with pytest.raises(ConfigError, match="as_of='soon' is not a date"):
        score_customers(duckdb_store, features, "soon", model=model)
    with pytest.raises(ConfigError, match="as_of='soon' is not a date"):
        read_scores(duckdb_store, model_name="crm-churn", as_of="soon")


@pytest.mark.parametrize(("language", "chinese"), [("zh", True), ("en", False)])
def test_reasons_follow_the_settings_language(
    duckdb_store, model, features, tmp_path, language: str, chinese: bool
):
    settings = project_settings(tmp_path, language=language)
    score_customers(duckdb_store, features, "2024-07-01", model=model, settings=settings)
    assert has_chinese(first_reason(duckdb_store)) is chinese


def test_reasons_without_settings_are_in_the_default_language(duckdb_store, model, features):
    score_customers(duckdb_store, features, "2024-07-01", model=model)
    assert has_chinese(first_reason(duckdb_store))


@pytest.fixture(scope="module")
def tier_model() -> ChurnModel:
    train = make_snapshot(pd.Timestamp("2024-01-01"), 400, seed=1)
    cal = make_snapshot(pd.Timestamp("2024-04-01"), 300, seed=2)
    return ChurnModel(**TINY).fit(
        train[TIER_FEATURES], train["churned"], calibration=(cal[TIER_FEATURES], cal["churned"])
    )


TIERS = [
    {"tier_id": "T0", "name": "classic", "label": "普通会员", "level": 0, "min_spend_12m": 0.0},
    {"tier_id": "T1", "name": "silver", "label": "银卡会员", "level": 1, "min_spend_12m": 1e3},
    {"tier_id": "T2", "name": "gold", "label": "金卡会员", "level": 2, "min_spend_12m": 3e3},
    {"tier_id": "T3", "name": "diamond", "label": None, "level": 3, "min_spend_12m": 8e3},
]


def test_tier_names_come_from_the_store_in_the_reasons_language(duckdb_store):
    assert tier_names_from_store(duckdb_store, language="zh") == {}
    with duckdb_store.begin() as conn:
        conn.execute(insert(Tier), TIERS)
    zh = tier_names_from_store(duckdb_store, language="zh")
    assert zh == {0: "普通会员", 1: "银卡会员", 2: "金卡会员", 3: "diamond"}  # no label: the name
    en = tier_names_from_store(duckdb_store, language="en")
    assert en == {0: "classic", 1: "silver", 2: "gold", 3: "diamond"}


def test_reasons_name_tiers_as_the_store_does(duckdb_store, tier_model):
    with duckdb_store.begin() as conn:
        conn.execute(insert(Tier), TIERS)
    snap = make_snapshot(pd.Timestamp("2024-07-01"), 250, seed=3).set_index("customer_id")
    # Everyone just dropped from gold to silver: a churn driver the model learnt.
    downgraded = snap[TIER_FEATURES].assign(
        last_tier_change_direction=-1, tier_level=1, days_since_tier_change=20
    )
    score_customers(duckdb_store, downgraded, "2024-07-01", model=tier_model, top_k=20)
    reasons = read_scores(duckdb_store, model_name="crm-churn", as_of="2024-07-01")["reasons"]
    assert reasons.str.contains("20天前从金卡会员降级").any()
    assert not reasons.str.contains("等级下降").any()


def test_read_scores_names_the_models_that_have_scores(duckdb_store, model, features):
    score_customers(duckdb_store, features.head(5), "2024-07-01", model=model)
    with pytest.raises(
        NotFoundError,
        match=r"No scores are stored for model 'crm-chrun'; models with scores: crm-churn\. "
        r"Did you mean 'crm-churn'\?",
    ):
        read_scores(duckdb_store, model_name="crm-chrun", as_of="2024-07-01")
    with pytest.raises(ValidationError, match=r"registry reference.*model_name='crm-churn'"):
        read_scores(duckdb_store, model_name="crm-churn@champion", as_of="2024-07-01")
    # A known model on a date it was not scored: nothing, not an error.
    assert read_scores(duckdb_store, model_name="crm-churn", as_of="2024-08-01").empty


def test_a_registry_reference_is_not_a_model_name(duckdb_store, model, features):
    with pytest.raises(ValidationError, match=r"registry reference.*model_name='crm-churn'"):
        score_customers(
            duckdb_store, features, "2024-07-01", model=model, model_name="crm-churn@champion"
        )


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CRM_ML_TEST_POSTGRES_URL")
def test_concurrent_rescoring_of_a_date_on_postgres_takes_turns(tmp_path, model, features):
    # Two `crm-ml score --as-of D` at once: the second used to die on the primary key.
    url, database = make_store_url("postgresql", tmp_path)
    pg = Store(url)
    init_store(pg)
    batches = list(score_batches(model, features, batch_size=100))
    first_deleted = threading.Event()
    errors: list[BaseException] = []

    def slow() -> Iterator[pd.DataFrame]:
        first_deleted.set()  # the first run has deleted; the second starts meanwhile
        time.sleep(1.0)
        yield from batches

    def run(version: str, rows: Iterable[pd.DataFrame]) -> None:
        try:
            with pg.begin() as conn:
                replace_scores(conn, rows, model_name="crm-churn", as_of=datetime(2024, 7, 1),
                               model_version=version, scored_at=datetime(2024, 7, 2))  # fmt: skip
        except Exception as exc:  # reported by the assert below
            errors.append(exc)

    try:
        first = threading.Thread(target=run, args=("1", slow()))
        first.start()
        assert first_deleted.wait(30)
        second = threading.Thread(target=run, args=("2", iter(batches)))
        second.start()
        first.join(60)
        second.join(60)
        assert errors == []
        stored = read_scores(pg, model_name="crm-churn", as_of="2024-07-01")
        assert len(stored) == len(features) and set(stored["model_version"]) == {"2"}
    finally:
        pg.dispose()
        drop_postgres_database(database)


def test_stored_reasons_never_argue_against_their_direction(model, features) -> None:
    # A churn model: "no purchase for N days" is a reason churn is high, never one it is low.
    frames = list(score_batches(model, features, language="zh", top_k=5))
    reasons = [r for batch in frames for row in batch["reasons"] for r in json.loads(row)]
    lowering = [r["text"] for r in reasons if r["direction"] == "lowers"]
    assert lowering  # the frame has customers whose churn some reasons hold down
    assert not [text for text in lowering if "天未购买" in text]
