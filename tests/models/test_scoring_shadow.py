"""Only the champion writes the scores tags, segments, lists and reports read.

Scoring another version (``crm-churn@challenger``, ``crm-churn/2``) is a shadow
run, stored under that reference, so a bad challenger can no longer replace the
champion's scores and move every churn tag.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from project_settings import import_one_order, project_settings

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.models.scoring import read_scores, score_customers
from crm_ml.models.scoring_targets import ScoringTarget
from crm_ml.models.training import train_model
from crm_ml.rules import latest_scores

from .synthetic import TINY, make_training_frame

pytest.importorskip("mlflow")

WEAK = {**TINY, "n_estimators": 3, "num_leaves": 2}
AS_OF = "2024-10-01"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A registry holding crm-churn v1 (champion) and v2 (a weaker challenger)."""
    own = project_settings(tmp_path_factory.mktemp("shadow"))
    frame = make_training_frame(n=400)
    for params, alias in [(TINY, "champion"), (WEAK, "challenger")]:
        registered = train_model("churn", frame, own, horizon_days=90, model_params=params)
        assert registered.registered.alias == alias
    return own


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frame = make_training_frame(n=400)
    return frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")


def stored(store, key: str) -> pd.DataFrame:
    return read_scores(store, model_name=key, as_of=AS_OF)


def test_a_challenger_is_scored_apart_and_the_champions_scores_stay(
    store, settings, features
) -> None:
    score_customers(store, features, AS_OF, settings=settings)
    champion = stored(store, "crm-churn")
    summary = score_customers(store, features, AS_OF, model="crm-churn@challenger",
                              settings=settings)  # fmt: skip
    after = stored(store, "crm-churn")
    assert set(after["model_version"]) == {"1"}
    np.testing.assert_array_equal(after["probability"], champion["probability"])
    assert summary.attrs["model_name"] == "crm-churn@challenger"
    shadow = stored(store, "crm-churn@challenger")
    assert set(shadow["model_version"]) == {"2"} and len(shadow) == len(features)
    assert not np.allclose(shadow["probability"], champion["probability"])
    # What tags, segments and churn lists read: still the champion's.
    with store.connect() as conn:
        read = latest_scores(conn, "crm-churn", datetime(2024, 10, 1))
    assert set(read["model_version"]) == {"1"}


def test_a_reference_is_production_only_when_it_resolves_to_the_champion(
    duckdb_store, settings, features
) -> None:
    for reference, key, version in [
        ("crm-churn/2", "crm-churn/2", "2"),
        ("models:/crm-churn@challenger", "crm-churn@challenger", "2"),
        ("crm-churn/1", "crm-churn", "1"),  # the champion's number: production
        ("crm-churn@champion", "crm-churn", "1"),
    ]:
        summary = score_customers(duckdb_store, features, AS_OF, model=reference,
                                  settings=settings)  # fmt: skip
        assert (summary.attrs["model_name"], summary.attrs["model_version"]) == (key, version)
        assert set(stored(duckdb_store, key)["model_version"]) == {version}


def test_rescoring_a_shadow_run_replaces_only_its_own_rows(
    duckdb_store, settings, features
) -> None:
    score_customers(duckdb_store, features, AS_OF, settings=settings)
    score_customers(duckdb_store, features, AS_OF, model="crm-churn@challenger",
                    settings=settings)  # fmt: skip
    score_customers(duckdb_store, features.head(100), AS_OF, model="crm-churn@challenger",
                    settings=settings, allow_fewer=True)  # fmt: skip
    assert len(stored(duckdb_store, "crm-churn@challenger")) == 100
    assert len(stored(duckdb_store, "crm-churn")) == len(features)


def test_the_champions_name_is_refused_to_another_version(duckdb_store, settings, features) -> None:
    with pytest.raises(
        ValidationError,
        match=r"model_name='crm-churn' holds the champion's scores, .* crm-churn@challenger is "
        r"version 2 and the champion is version 1\. Leave model_name out to keep its scores "
        r"apart as 'crm-churn@challenger', or make it champion first "
        r"\(`crm-ml models promote crm-churn 2 --reason \.\.\.`\)",
    ):
        score_customers(duckdb_store, features, AS_OF, model="crm-churn@challenger",
                        settings=settings, model_name="crm-churn")  # fmt: skip
    with pytest.raises(NotFoundError, match="No scores are stored for model 'crm-churn'"):
        stored(duckdb_store, "crm-churn")


def test_shadow_keys_are_read_by_their_reference(duckdb_store, settings, features) -> None:
    score_customers(duckdb_store, features.head(5), AS_OF, model="crm-churn/2",
                    settings=settings)  # fmt: skip
    assert len(stored(duckdb_store, "crm-churn/2")) == 5
    with pytest.raises(
        NotFoundError,
        match=r"No scores are stored for model 'crm-churn@challenger'; models with scores: "
        r"crm-churn/2\. .*another version's under the reference it was scored with",
    ):
        stored(duckdb_store, "crm-churn@challenger")


def test_a_category_models_champion_writes_under_its_own_name(
    duckdb_store, settings, features
) -> None:
    beauty = "crm-propensity-beauty"
    frame = make_training_frame(n=400)
    for params, alias in [(TINY, "champion"), (WEAK, "challenger")]:
        registered = train_model("propensity", frame, settings, horizon_days=90,
                                 category="beauty", model_params=params).registered  # fmt: skip
        assert (registered.name, registered.alias) == (beauty, alias)
    score_customers(duckdb_store, features, AS_OF, model=f"{beauty}@champion", settings=settings)
    score_customers(duckdb_store, features, AS_OF, model=f"{beauty}@challenger",
                    settings=settings)  # fmt: skip
    assert set(stored(duckdb_store, beauty)["model_version"]) == {"1"}
    assert set(stored(duckdb_store, f"{beauty}@challenger")["model_version"]) == {"2"}


def test_without_a_champion_every_version_is_a_shadow_run() -> None:
    orphan = ScoringTarget("crm-churn@challenger", "crm-churn", "1", champion=None)
    assert not orphan.is_champion
    assert (orphan.key, orphan.uri) == ("crm-churn@challenger", "crm-churn/1")


def test_score_says_which_key_it_wrote_and_who_has_no_churn_score(
    tmp_path: Path, settings: Settings, features: pd.DataFrame, monkeypatch, capsys
) -> None:
    import crm_ml.features
    from crm_ml.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "crm_ml.toml").write_text("")
    monkeypatch.setenv("CRM_ML_HOME", str(tmp_path))
    monkeypatch.delenv("CRM_ML_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    assert main(["init"]) == 0
    import_one_order(tmp_path)
    never = features.index[:3]
    frame = features.copy()
    frame.loc[never, "orders_lifetime"] = 0
    monkeypatch.setattr(crm_ml.features, "customer_features", lambda *a, **k: frame)
    capsys.readouterr()

    argv = ["score", "--as-of", AS_OF, "--model", "crm-churn@challenger"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "crm-churn@challenger (version 2) as of 2024-10-01:" in out
    assert (
        "Written apart as crm-churn@challenger (a shadow run; version 2 is not the champion): "
        "tags, segments, lists and reports keep reading crm-churn, the champion's scores "
        "(version 1)." in out
    )
    assert "3 customers who never bought have no churn score" in out

    assert main(["score", "--as-of", AS_OF, "--model", "crm-churn/1"]) == 0
    out = capsys.readouterr().out
    assert "Written as crm-churn: the champion's scores, which tags, segments, lists" in out
