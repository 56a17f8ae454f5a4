from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.baselines import BetaGeoBaseline, RecencyRule, RFMScore
from crm_ml.models.beta_geo import simulate_beta_geo


def test_recency_rule_ranks_by_days_since_last_purchase() -> None:
    X = pd.DataFrame({"recency_days": [5.0, 200.0, 40.0, np.nan]})
    y = np.array([0, 1, 0, 1])
    churn = RecencyRule(target="churn").fit(X, y).predict_proba(X)[:, 1]
    assert np.argsort(churn, kind="stable").tolist() == [0, 2, 1, 3]
    # The isotonic map of a perfect ranking: 0 of 2 and 2 of 2, Jeffreys-estimated.
    low, high = 0.5 / 3, 2.5 / 3
    assert churn.tolist() == pytest.approx([low, high, low, high])
    buy = RecencyRule(target="purchase").fit(X, 1 - y).predict_proba(X)[:, 1]
    assert buy.tolist() == pytest.approx([high, low, high, low])


def test_rfm_score_by_hand() -> None:
    X = pd.DataFrame(
        {
            "recency_days": [1.0, 2, 3, 4, 5],
            "orders_365d": [5.0, 4, 3, 2, 1],
            "revenue_365d": [500.0, 400, 300, 200, 100],
        }
    )
    rfm = RFMScore(target="churn").fit(X, np.array([0, 0, 1, 1, 1]))
    assert rfm.score(X).tolist() == [15.0, 12.0, 9.0, 6.0, 3.0]
    low, high = 0.5 / 3, 3.5 / 4  # 0 of 2, 3 of 3
    assert rfm.predict_proba(X)[:, 1].tolist() == pytest.approx([low, low, high, high, high])


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValidationError, match="orders_365d, revenue_365d"):
        RFMScore().fit(pd.DataFrame({"recency_days": [1.0, 2.0]}), np.array([0, 1]))
    with pytest.raises(ValidationError, match="target"):
        RecencyRule(target="upsell").fit(pd.DataFrame({"recency_days": [1.0]}), np.array([1]))  # type: ignore[arg-type]


def test_bg_nbd_baseline_from_features() -> None:
    truth = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    rfm = simulate_beta_geo(truth, np.random.default_rng(2).uniform(26, 52, 3000), seed=3)
    # Back to the feature vocabulary, in days.
    X = pd.DataFrame(
        {
            "orders_lifetime": rfm["frequency"] + 1,
            "tenure_days": rfm["T"] * 7,
            "recency_days": (rfm["T"] - rfm["recency"]) * 7,
        }
    )
    back = BetaGeoBaseline.rfm(X)
    np.testing.assert_allclose(back.to_numpy(), rfm.to_numpy(), atol=1e-9)
    churn = BetaGeoBaseline(horizon_days=91, target="churn").fit(X)
    buy = BetaGeoBaseline(horizon_days=91, target="purchase").fit(X)
    assert churn.model_.params_["r"] == pytest.approx(0.5, rel=0.25)
    np.testing.assert_allclose(churn.predict_proba(X)[:, 1] + buy.predict_proba(X)[:, 1], 1.0)
    # Frequent buyers seen recently are the least likely to churn.
    p = churn.predict_proba(X)[:, 1]
    active = (X["orders_lifetime"] > 5) & (X["recency_days"] < 14)
    assert p[active.to_numpy()].mean() < p[~active.to_numpy()].mean()


def test_bg_nbd_baseline_fits_on_a_sample_of_large_populations(caplog) -> None:
    rfm = simulate_beta_geo(
        {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5},
        np.random.default_rng(4).uniform(26, 52, 4000),
        seed=5,
    )
    X = pd.DataFrame(
        {
            "orders_lifetime": rfm["frequency"] + 1,
            "tenure_days": rfm["T"] * 7,
            "recency_days": (rfm["T"] - rfm["recency"]) * 7,
        }
    )
    caplog.set_level("INFO", logger="crm_ml.models.beta_geo")
    sampled = BetaGeoBaseline(target="purchase", fit_customers=2000).fit(X)
    assert "fitted on 2000 customers" in caplog.text
    full = BetaGeoBaseline(target="purchase", fit_customers=10_000).fit(X)
    assert "fitted on 4000 customers" in caplog.text
    # Everyone is still scored, and the sample's fit ranks them almost as the full one does.
    p, q = sampled.predict_proba(X)[:, 1], full.predict_proba(X)[:, 1]
    assert len(p) == len(X)
    assert np.corrcoef(p, q)[0, 1] > 0.99
