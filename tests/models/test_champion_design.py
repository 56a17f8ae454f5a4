"""A champion measured on another backtest is re-fitted with its own training design.

The reviewer's case (F1): a challenger trained on 3 snapshots, after one
customer was erased, was promoted over a 5-snapshot champion because the
champion was re-fitted on the challenger's single training snapshot, and the
reason quoted that re-fitted AUC as the champion's.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.models.evaluation import backtest
from crm_ml.models.promotion import decide_alias
from crm_ml.models.training import train_model

from .synthetic import TINY, make_snapshot

mlflow = pytest.importorskip("mlflow")
tracking = pytest.importorskip("crm_ml.models.tracking")

#: Six snapshots 91 days apart; a snapshot's customers depend only on its date.
DATES = pd.date_range(end="2024-10-01", periods=6, freq="91D")
ERASED = "C00007"


def _frame(count: int, *, erased: str | None = None) -> pd.DataFrame:
    """The latest ``count`` snapshots, without customer ``erased`` (as after an erasure)."""
    parts = [make_snapshot(day, 500, seed=i) for i, day in enumerate(DATES)][-count:]
    frame = pd.concat(parts, ignore_index=True)
    return frame[frame["customer_id"] != erased] if erased else frame


def _train(frame: pd.DataFrame, settings: Settings) -> tracking.RegisteredVersion:
    return train_model("churn", frame, settings, horizon_days=90, model_params=TINY).registered


def _aucs(reason: str) -> list[str]:
    return re.findall(r"\d\.\d{4}", reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return project_settings(tmp_path)


@pytest.fixture
def champion(settings: Settings) -> tracking.RegisteredVersion:
    """v1: champion trained on 5 snapshots (4 before its test snapshot, 2024-10-01)."""
    first = _train(_frame(5), settings)
    assert first.alias == "champion"
    return first


def test_the_design_is_recorded_on_the_version(
    settings: Settings, champion: tracking.RegisteredVersion
) -> None:
    tags = tracking.version_tags("crm-churn", champion.version, settings)
    assert tags["training_snapshots"] == "4"
    assert tags["training_offsets_days"] == "364,273,182,91"
    assert tags["gap_days"] == "91"  # inferred from the frame's spacing
    # The AUC's sampling error, to judge how much a win by 0.0005 means (reviewer F12 c).
    se = float(tags["backtest_roc_auc_se"])
    assert 0.005 < se < 0.05
    run = mlflow.MlflowClient().get_run(champion.run_id)
    assert run.data.metrics["backtest_roc_auc_se"] == pytest.approx(se, abs=5e-5)


def test_a_challenger_on_fewer_snapshots_after_an_erasure_is_not_promoted(
    settings: Settings, champion: tracking.RegisteredVersion
) -> None:
    fewer = _train(_frame(3, erased=ERASED), settings)
    assert fewer.alias == "challenger"
    assert fewer.reason == (
        "champion v1 was trained on 4 snapshots 91 days apart; this frame has 2 before its "
        "test snapshot 2024-10-01 (2024-04-02, 2024-07-02) and lacks 2023-10-03, 2024-01-02, "
        "so the champion cannot be re-fitted as it was trained: not comparable. Train on the "
        "same design (`crm-ml train churn --snapshots 5 --gap-days 91`) to compare, or "
        "promote by hand if intended"
    )
    assert tracking.resolve_version("crm-churn@champion", settings) == ("crm-churn", "1")


def test_the_same_design_on_a_changed_test_set_is_still_compared(
    settings: Settings, champion: tracking.RegisteredVersion
) -> None:
    again = _train(_frame(5, erased=ERASED), settings)
    own = float(tracking.version_tags("crm-churn", "1", settings)["backtest_roc_auc"])
    new_auc, refitted, recorded = _aucs(again.reason)
    # Same recipe, same snapshots, same test customers: the re-fit ties, and a tie promotes.
    assert again.alias == "champion" and new_auc == refitted
    assert recorded == f"{own:.4f}"
    assert again.reason == (
        f"backtest AUC {new_auc} is not below champion v1's {refitted} re-fitted to this "
        "backtest with its own recipe and training design (4 snapshots 91 days apart), as its "
        "backtest had other test customers or labels; v1's own recorded AUC is "
        f"{recorded} (test snapshot 2024-10-01)"
    )


def test_the_champion_keeps_its_own_design_when_the_challenger_has_more_snapshots(
    settings: Settings, champion: tracking.RegisteredVersion
) -> None:
    more = _frame(6, erased=ERASED)
    recipe = tracking.load_model("crm-churn/1", settings).model
    # The champion's recipe on its own 4 snapshots before the test date, not the challenger's 5.
    expected = backtest(
        more[more["as_of"] >= DATES[1]], label="churned", model=recipe, horizon_days=90,
        features=list(recipe.feature_names_in_), baselines=[],
    ).metrics.loc["model", "roc_auc"]  # fmt: skip
    challenger = _train(more, settings)
    assert _aucs(challenger.reason)[1] == f"{expected:.4f}"
    assert "(4 snapshots 91 days apart)" in challenger.reason


def test_a_version_registered_before_the_design_tags_uses_its_runs_split(
    settings: Settings, champion: tracking.RegisteredVersion
) -> None:
    client = mlflow.MlflowClient()
    for tag in ("training_snapshots", "training_offsets_days", "gap_days"):
        client.delete_model_version_tag("crm-churn", "1", tag)
    fewer = _train(_frame(3, erased=ERASED), settings)
    assert fewer.alias == "challenger"
    assert fewer.reason.startswith("champion v1 was trained on 4 snapshots 91 days apart;")


def test_a_champion_without_any_record_of_its_design_is_not_compared(settings: Settings) -> None:
    """Neither tags nor run parameters: no fair re-fit, so the new version stays challenger."""
    champion = SimpleNamespace(version="3", tags={"backtest_id": "old"}, run_id=None)
    result = SimpleNamespace(backtest_id="new")
    auc, how = tracking._champion_auc(
        mlflow.MlflowClient(), champion, "crm-churn", result, lambda *a: 1.0, settings
    )
    assert auc is None and "training design" in how and "not recorded" in how
    alias, reason = decide_alias(0.9, auc, champion_version="3", how=how)
    assert alias == "challenger" and "not comparable" in reason


def test_a_test_snapshot_one_day_older_on_the_same_data_may_replace_the_champion(
    settings: Settings,
) -> None:
    # An older training notebook tested on the midnight after the last order, the CLI on the
    # last order's day: one day apart on the same data (reviewer F2).
    later = _frame(5).assign(as_of=lambda f: f["as_of"] + pd.Timedelta(days=1))
    assert _train(later, settings).alias == "champion"
    cli = _train(_frame(5), settings)
    assert "older data" not in cli.reason
    assert "re-fitted to this backtest" in cli.reason
