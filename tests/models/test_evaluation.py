from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from crm_ml.errors import ValidationError
from crm_ml.models.estimators import ChurnModel
from crm_ml.models.evaluation import backtest, infer_features, split_snapshots

from .synthetic import SNAPSHOTS, TINY, make_training_frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_training_frame(n=400)


def test_split_uses_only_snapshots_whose_labels_closed(frame: pd.DataFrame) -> None:
    split = split_snapshots(frame, horizon_days=90)
    assert split.test_as_of == SNAPSHOTS[3]
    assert split.calibration_as_of == SNAPSHOTS[2]
    assert split.train_as_of == (SNAPSHOTS[0], SNAPSHOTS[1])
    # With a 100-day horizon the July snapshot's labels are still open on October 1st.
    longer = split_snapshots(frame, horizon_days=100)
    assert longer.calibration_as_of == SNAPSHOTS[1]
    assert longer.train_as_of == (SNAPSHOTS[0],)


def test_split_refuses_too_few_snapshots(frame: pd.DataFrame) -> None:
    with pytest.raises(ValidationError, match="needs two snapshots"):
        split_snapshots(frame, horizon_days=200)
    with pytest.raises(ValidationError, match="not in the frame"):
        split_snapshots(frame, horizon_days=90, test_as_of="2023-01-01")


def test_features_exclude_ids_and_labels(frame: pd.DataFrame) -> None:
    cols = infer_features(frame, label="churned")
    assert {"as_of", "customer_id", "churned", "purchased"}.isdisjoint(cols)
    assert "recency_days" in cols


def test_backtest_reports_model_and_baselines(frame: pd.DataFrame) -> None:
    result = backtest(frame, label="churned", model=ChurnModel(**TINY), horizon_days=90)
    assert result.metrics.index.tolist() == ["model", "recency_rule", "rfm_score", "bg_nbd"]
    assert {"roc_auc", "pr_auc", "brier", "ece"} <= set(result.metrics.columns)
    assert (result.metrics["customers"] == 400).all()
    assert result.metrics.loc["model", "roc_auc"] > 0.6
    assert result.lift.groupby("model").size().tolist() == [10, 10, 10, 10]
    assert set(result.precision["model"]) == set(result.metrics.index)
    assert result.predictions.columns.tolist() == [
        "customer_id",
        "churned",
        "model",
        "recency_rule",
        "rfm_score",
        "bg_nbd",
    ]
    assert isinstance(result.figures["calibration"], Figure)
    assert isinstance(result.figures["lift"], Figure)
    assert len(result.backtest_id) == 16
    again = backtest(frame, label="churned", model=ChurnModel(**TINY), horizon_days=90)
    assert again.backtest_id == result.backtest_id
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_backtest_figures_follow_the_language(frame: pd.DataFrame) -> None:
    model = ChurnModel(**TINY)
    zh = backtest(frame, label="churned", model=model, horizon_days=90, language="zh")
    en = backtest(frame, label="churned", model=model, horizon_days=90, language="en")
    assert zh.figures["calibration"].axes[0].get_title() == "测试快照上的概率校准"
    assert zh.figures["lift"].axes[0].get_title() == "各十分位提升度"
    assert en.figures["lift"].axes[1].get_title() == "Cumulative gains"
    # Without a language: the settings' default, Chinese.
    default = backtest(frame, label="churned", model=model, horizon_days=90)
    assert default.figures["lift"].axes[0].get_title() == "各十分位提升度"
    with pytest.raises(ValidationError, match="Figure language"):
        backtest(frame, label="churned", model=model, horizon_days=90, language="fr")
