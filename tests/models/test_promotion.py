"""The promotion rules on their own: no MLflow, only a version's tags and a backtest."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from crm_ml.models.evaluation import BacktestSplit
from crm_ml.models.promotion import (
    SAME_DATA_SLACK,
    TrainingDesign,
    auc_standard_error,
    below_baseline,
    decide_alias,
    design_from_tags,
    design_not_reproducible,
    learnt_from_older_data,
    other_horizon,
    other_label,
    refitted_how,
)

TEST_DAY = pd.Timestamp("2025-10-01")


def _champion(**tags: str) -> SimpleNamespace:
    return SimpleNamespace(version="3", tags=tags)


def _split(*days_before: int, test: pd.Timestamp = TEST_DAY) -> BacktestSplit:
    """Trees on all but the last offset, calibration on the last, as training does."""
    *trees, calibration = (test - pd.Timedelta(days=d) for d in days_before)
    return BacktestSplit(tuple(trees), calibration, test, 90)


def test_the_rules_do_not_import_mlflow() -> None:
    code = "import sys, crm_ml.models.promotion; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_decide_alias_rules() -> None:
    assert decide_alias(0.7, None, champion_version=None, how="")[0] == "champion"
    alias, reason = decide_alias(0.70, 0.70, champion_version="3", how="on the same backtest")
    assert alias == "champion"
    assert reason == "backtest AUC 0.7000 is not below champion v3's 0.7000 on the same backtest"
    assert decide_alias(0.69, 0.70, champion_version="3", how="x")[0] == "challenger"
    assert decide_alias(float("nan"), 0.7, champion_version="3", how="x")[0] == "challenger"
    alias, reason = decide_alias(0.9, None, champion_version="3", how="features differ")
    assert alias == "challenger" and "not comparable" in reason


def test_below_baseline_names_the_best_baseline() -> None:
    metrics = pd.DataFrame(
        {"roc_auc": [0.782, 0.841, 0.80, 0.872]},
        index=pd.Index(["model", "recency_rule", "rfm_score", "bg_nbd"], name="model"),
    )
    assert below_baseline(metrics) == (
        "backtest AUC 0.7820 is below the BG/NBD baseline's 0.8720 on the same backtest; "
        "not made champion"
    )
    assert below_baseline(metrics.assign(roc_auc=[0.91, 0.84, 0.8, 0.87])) is None


def test_auc_standard_error_follows_hanley_and_mcneil() -> None:
    # Their 1982 example: AUC 0.9 on 50 positives and 50 negatives.
    assert auc_standard_error(0.9, 50, 50) == pytest.approx(0.0321, abs=1e-4)
    assert math.isnan(auc_standard_error(0.9, 0, 50))


def test_older_test_data_is_refused_beyond_one_day() -> None:
    champion = _champion(test_snapshot="2025-10-02")
    one_day_older = _split(180, 90, test=TEST_DAY)
    assert pd.Timestamp("2025-10-02") - SAME_DATA_SLACK == TEST_DAY
    assert learnt_from_older_data(champion, one_day_older) is None
    two_days_older = _split(180, 90, test=TEST_DAY - pd.Timedelta(days=1))
    assert learnt_from_older_data(champion, two_days_older) == (
        "tested on older data than champion v3 (test snapshot 2025-09-30 vs 2025-10-02); "
        "promote by hand if intended"
    )
    assert learnt_from_older_data(_champion(), two_days_older) is None  # nothing recorded


def test_another_label_or_horizon_is_not_compared() -> None:
    assert other_label(_champion(label="churn"), "churn") is None
    assert other_label(_champion(), "churn") is None  # versions from before labels were tagged
    assert "learned the label 'purchase'" in str(other_label(_champion(label="purchase"), "churn"))
    assert other_horizon(_champion(), "90", "90") is None
    assert other_horizon(_champion(), None, "90") is None
    assert "predicts over 60 days, this version over 90 days" in str(
        other_horizon(_champion(), "60", "90")
    )


def test_training_design_round_trips_through_its_tags() -> None:
    design = TrainingDesign.of_split(_split(360, 270, 180, 90), gap_days="90")
    tags = design.as_tags()
    assert tags == {
        "training_snapshots": "4",
        "training_offsets_days": "360,270,180,90",
        "gap_days": "90",
    }
    assert design_from_tags(tags) == design
    assert design.describe() == "4 snapshots 90 days apart"
    assert design.split_at(TEST_DAY, 90) == _split(360, 270, 180, 90)
    assert design_from_tags({"training_offsets_days": "360,x"}) is None


def test_a_design_the_frame_cannot_reproduce_names_the_missing_dates() -> None:
    design = TrainingDesign.of_split(_split(360, 270, 180, 90), gap_days="90")
    assert design_not_reproducible(design, "3", _split(360, 270, 180, 90), "crm-ml train") is None
    why = design_not_reproducible(design, "3", _split(180, 90), "crm-ml train churn")
    assert why is not None
    assert "champion v3 was trained on 4 snapshots 90 days apart" in why
    assert "lacks 2024-10-06, 2025-01-04" in why
    assert "`crm-ml train churn --snapshots 5 --gap-days 90`" in why


def test_refitted_reason_quotes_the_champions_own_auc() -> None:
    design = TrainingDesign.of_split(_split(180, 90))
    champion = _champion(backtest_roc_auc="0.9008", test_snapshot="2025-07-01")
    assert refitted_how(design, champion).endswith(
        "v3's own recorded AUC is 0.9008 (test snapshot 2025-07-01)"
    )
