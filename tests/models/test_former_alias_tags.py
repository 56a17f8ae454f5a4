"""A version's tags never claim an alias it no longer holds (reviewer F12 a).

After ``crm-ml models promote crm-churn 2``, v1 kept ``promotion=champion`` and
the reason it became champion, so ``models list`` contradicted its alias column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.models.training import train_model

from .synthetic import TINY, make_training_frame

mlflow = pytest.importorskip("mlflow")
tracking = pytest.importorskip("crm_ml.models.tracking")

WEAK = {**TINY, "n_estimators": 3, "num_leaves": 2}


class Killed(BaseException):
    """What a kill looks like to the code it stops."""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """v1 champion, v2 a weaker challenger."""
    own = project_settings(tmp_path)
    frame = make_training_frame(n=400)
    for params, alias in ((TINY, "champion"), (WEAK, "challenger")):
        trained = train_model("churn", frame, own, horizon_days=90, model_params=params)
        assert trained.registered is not None and trained.registered.alias == alias
    return own


def _tags(settings: Settings, version: str) -> dict[str, str]:
    return tracking.version_tags("crm-churn", version, settings)


def test_promoting_by_hand_untags_the_former_champion(settings: Settings) -> None:
    tracking.set_alias("crm-churn", "2", "champion", settings, reason="restore v2")
    former = _tags(settings, "1")
    assert former["promotion"] == "none"
    assert former["promotion_reason"].startswith("no longer champion (v2 took the alias, ")
    assert former["promotion_reason"].endswith(
        "; it was made champion because: first version: no champion yet"
    )
    listed = tracking.list_versions("crm-churn", settings)
    assert listed.loc[1, "aliases"] == "" and listed.loc[2, "aliases"] == "champion"
    assert listed.loc[1, "promotion_reason"] == former["promotion_reason"]


def test_a_new_version_taking_an_alias_untags_the_one_it_left(settings: Settings) -> None:
    frame = make_training_frame(n=400)
    weaker = train_model("churn", frame, settings, horizon_days=90, model_params=WEAK)
    assert weaker.registered.alias == "challenger"  # v3 takes the challenger alias from v2
    former = _tags(settings, "2")
    assert former["promotion"] == "none"
    assert former["promotion_reason"].startswith("no longer challenger (v3 took the alias, ")
    assert _tags(settings, "1")["promotion"] == "champion"  # untouched: it still is


def test_a_retag_killed_halfway_is_finished_by_the_next_alias_move(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = mlflow.MlflowClient.set_model_version_tag, []

    def dying(self: object, *args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) > 3:  # v2's reason and promotion, v1's reason: then the kill
            raise Killed
        return real(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "set_model_version_tag", dying)
        with pytest.raises(Killed):
            tracking.set_alias("crm-churn", "2", "champion", settings, reason="restore v2")
    assert _tags(settings, "1")["promotion"] == "champion"  # the kill left it stale

    tracking.set_alias("crm-churn", "2", "champion", settings, reason="restore v2")
    former = _tags(settings, "1")
    assert former["promotion"] == "none"
    assert former["promotion_reason"].count("no longer champion") == 1  # not nested
    assert pd.notna(tracking.list_versions("crm-churn", settings).loc[1, "backtest_auc"])
