"""The backtest also measures the customers churn lists act on: those who bought lately."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.models.estimators import ChurnModel
from crm_ml.models.evaluation import ACTIVE_DAYS, active_customer_metrics, backtest

from .synthetic import TINY, make_training_frame


def test_active_metrics_count_only_recent_buyers() -> None:
    frame = make_training_frame(n=600)
    result = backtest(frame, label="churned", model=ChurnModel(**TINY), horizon_days=90)

    test = frame[frame["as_of"] == frame["as_of"].max()]
    active = test[test["recency_days"] <= ACTIVE_DAYS]
    assert 0 < len(active) < len(test)
    table = result.active_metrics
    assert table.loc["model", "customers"] == len(active)
    assert table.loc["model", "positives"] == active["churned"].sum()
    assert list(table.index) == list(result.metrics.index)  # the baselines too
    # Recent buyers are harder to call than the whole base, long-lapsed customers included.
    assert table.loc["model", "roc_auc"] < result.metrics.loc["model", "roc_auc"]


def test_never_bought_is_not_active() -> None:
    predictions = pd.DataFrame({"y": [1, 0, 1, 0], "model": [0.9, 0.2, 0.8, 0.1]})
    recency = pd.Series([10.0, np.nan, 400.0, 30.0])
    table = active_customer_metrics(predictions, recency, label="y", models=["model"])
    assert table.loc["model", "customers"] == 2
    assert table.loc["model", "roc_auc"] == pytest.approx(1.0)
    assert active_customer_metrics(
        predictions, recency * 0 + 999, label="y", models=["model"]
    ).empty
