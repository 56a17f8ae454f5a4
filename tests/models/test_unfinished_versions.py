"""A training run killed part-way: no unvetted version may be promoted or score.

Crashes are simulated by making one step of ``log_training_run`` raise, as a
``kill -9`` would stop it there; the registry is then read as a later process would.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.models.promotion import CHALLENGER, CHAMPION
from crm_ml.models.training import train_model

from .synthetic import TINY, make_training_frame

mlflow = pytest.importorskip("mlflow")
tracking = pytest.importorskip("crm_ml.models.tracking")


class Killed(Exception):
    """Stands for the training process dying at the patched step."""


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_training_frame(n=400)


def _train(frame: pd.DataFrame, settings: Settings):
    registered = train_model("churn", frame, settings, horizon_days=90, model_params=TINY)
    assert registered.registered is not None
    return registered.registered


def _register_untagged_then_die(name: str, model_uri: str, tags: object) -> str:
    """Register the version bare and die, as older crm_ml could (it tagged it afterwards)."""
    mlflow.register_model(model_uri, name)
    raise Killed


@pytest.fixture
def interrupted(tmp_path: Path, frame: pd.DataFrame, monkeypatch) -> Settings:
    """A project with a vetted champion v1 and a v2 whose training died right after registering."""
    own = project_settings(tmp_path)
    assert _train(frame, own).alias == "champion"
    with monkeypatch.context() as patch:
        patch.setattr(tracking, "_register_version", _register_untagged_then_die)
        with pytest.raises(Killed):
            _train(frame, own)
    return own


def test_an_unfinished_version_is_listed_as_not_vetted(interrupted: Settings) -> None:
    versions = tracking.list_versions("crm-churn", interrupted)
    assert list(versions.index) == [2, 1]
    assert versions.loc[2, "promotion_reason"] == tracking.UNFINISHED_REASON
    assert versions.loc[2, "aliases"] == "" and pd.isna(versions.loc[2, "backtest_auc"])
    assert versions.loc[1, "promotion_reason"] == "first version: no champion yet"


def test_promoting_an_unfinished_version_is_refused(interrupted: Settings) -> None:
    run_id = tracking.list_versions("crm-churn", interrupted).loc[2, "run_id"]
    for alias in (CHAMPION, CHALLENGER):
        with pytest.raises(ValidationError) as refused:
            tracking.set_alias("crm-churn", "2", alias, interrupted, reason="looks fine")
        message = str(refused.value)
        assert f"crm-churn v2 was never vetted: its training run {run_id} did not finish" in message
        assert "Train again with `crm-ml train churn`" in message and "MLflow UI" in message
    assert tracking.resolve_version("crm-churn@champion", interrupted) == ("crm-churn", "1")
    assert "promotion_reason" not in tracking.version_tags("crm-churn", "2", interrupted)


def test_scoring_with_an_unfinished_version_is_refused(interrupted: Settings) -> None:
    from crm_ml.models.scoring_targets import scoring_target

    with pytest.raises(ValidationError, match="cannot be promoted or score customers"):
        scoring_target("crm-churn/2", interrupted)
    with pytest.raises(ValidationError, match="never vetted"):
        tracking.load_model("models:/crm-churn/2", interrupted)
    assert scoring_target("crm-churn@champion", interrupted).version == "1"


def test_training_after_an_unfinished_version_registers_and_promotes(
    interrupted: Settings, frame: pd.DataFrame
) -> None:
    again = _train(frame, interrupted)
    assert (again.version, again.alias) == ("3", "champion")
    assert "not below champion v1's" in again.reason
    versions = tracking.list_versions("crm-churn", interrupted)
    assert versions.loc[3, "aliases"] == "champion"
    assert versions.loc[2, "promotion_reason"] == tracking.UNFINISHED_REASON


def test_a_run_killed_before_registering_leaves_no_version(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch
) -> None:
    own = project_settings(tmp_path)
    _train(frame, own)
    with monkeypatch.context() as patch:
        patch.setattr(tracking, "_promotion", lambda *args, **kwargs: _raise(Killed))
        with pytest.raises(Killed):
            _train(frame, own)
    assert list(tracking.list_versions("crm-churn", own).index) == [1]


def test_a_run_killed_before_its_alias_leaves_a_vetted_version(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch
) -> None:
    own = project_settings(tmp_path)
    _train(frame, own)
    with monkeypatch.context() as patch:
        patch.setattr(
            mlflow.MlflowClient, "set_registered_model_alias", lambda *args: _raise(Killed)
        )
        with pytest.raises(Killed):
            _train(frame, own)
    tags = tracking.version_tags("crm-churn", "2", own)
    assert {"backtest_roc_auc", "label", "horizon_days", "promotion_reason"} <= set(tags)
    assert tracking.list_versions("crm-churn", own).loc[2, "aliases"] == ""
    tracking.set_alias("crm-churn", "2", CHAMPION, own, reason="vetted, alias lost")
    assert tracking.resolve_version("crm-churn@champion", own) == ("crm-churn", "2")


def _raise(error: type[Exception]) -> None:
    raise error
