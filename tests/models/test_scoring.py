from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from crm_ml.errors import ValidationError
from crm_ml.models.estimators import ChurnModel
from crm_ml.models.scoring import read_scores, risk_band, score_customers
from crm_ml.store.schema import Score

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
    assert reasons and {"feature", "text", "actionable", "contribution"} == set(reasons[0])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in reasons[0]["text"])  # the zh run replaced it


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
