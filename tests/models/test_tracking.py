from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from project_settings import import_one_order, project_settings

from crm_ml.config import Settings
from crm_ml.errors import CrmMlError, NotFoundError
from crm_ml.models.reasons import explain
from crm_ml.models.training import train_model

from .synthetic import TINY, make_training_frame

if TYPE_CHECKING:
    from crm_ml.models.tracking import RegisteredVersion

WEAK = {**TINY, "n_estimators": 3, "num_leaves": 2}

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return project_settings(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_training_frame(n=400)


@pytest.fixture(scope="module")
def churn_versions(settings: Settings, frame: pd.DataFrame) -> list[RegisteredVersion]:
    """Three churn versions in the module's registry: a champion, a weaker one, one on new data.

    Built once, so that each test reads the same history whichever runs first or alone.
    """
    other = make_training_frame(n=600)  # a different backtest: the recipe is re-fitted on it
    return [
        train_model("churn", data, settings, horizon_days=90, model_params=params).registered
        for data, params in ((frame, TINY), (frame, WEAK), (other, TINY))
    ]


@pytest.fixture
def client(settings: Settings) -> Any:
    """An MLflow client on the module's registry, whatever another test last pointed MLflow at."""
    from crm_ml.models.tracking import configure_tracking

    return mlflow.MlflowClient(configure_tracking(settings))


def test_importing_models_does_not_import_mlflow() -> None:
    code = "import sys, crm_ml.models, crm_ml.models.scoring; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_weaker_version_is_challenger_and_says_why(
    settings: Settings, churn_versions: list[RegisteredVersion], client: Any
) -> None:
    from crm_ml.models.tracking import version_tags

    first, weaker, _ = churn_versions
    assert (first.version, first.alias) == ("1", "champion")
    assert weaker.alias == "challenger"
    assert "is below champion v1's" in weaker.reason and "on the same backtest" in weaker.reason
    tags = version_tags("crm-churn", weaker.version, settings)
    assert tags["promotion"] == "challenger" and tags["promotion_reason"] == weaker.reason
    run = client.get_run(weaker.run_id)
    assert run.data.tags["promotion_reason"] == weaker.reason
    assert run.data.params["test_snapshot"] == "2024-10-01"
    assert run.data.params["train_snapshots"] == "2024-01-01,2024-04-01"
    assert "recency_rule_roc_auc" in run.data.metrics and "backtest_ece" in run.data.metrics


def test_the_champion_round_trips_through_the_registry(
    settings: Settings, frame: pd.DataFrame, churn_versions: list[RegisteredVersion]
) -> None:
    from crm_ml.models.tracking import load_model

    loaded = load_model("crm-churn@champion", settings)
    assert (loaded.name, loaded.version) == ("crm-churn", churn_versions[-1].version)
    latest = frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")
    X = latest[list(loaded.model.feature_names_in_)].head(5)
    probability = loaded.model.predict_proba(X)[:, 1]
    assert np.all((probability >= 0) & (probability <= 1))
    assert len(explain(loaded.model, X)) > 0

    pyfunc = mlflow.pyfunc.load_model("models:/crm-churn@champion")
    out = pyfunc.predict(
        X.astype({"city_tier": object}).reset_index(drop=True), params={"reasons": True}
    )
    np.testing.assert_allclose(out["probability"], probability)
    assert json.loads(out["reasons"][0])[0]["text"]


def test_artifacts_live_under_mlruns(
    settings: Settings, churn_versions: list[RegisteredVersion], client: Any
) -> None:
    experiment = client.get_experiment_by_name("crm-churn")
    assert (
        experiment.artifact_location == (settings.mlruns_dir / "artifacts" / "crm-churn").as_uri()
    )
    pngs = list((settings.mlruns_dir / "artifacts").rglob("*.png"))
    assert {p.name for p in pngs} >= {"calibration.png", "lift.png"}
    assert not (Path.cwd() / "mlflow.db").exists()


def test_new_data_compares_against_the_champion_recipe(
    churn_versions: list[RegisteredVersion],
) -> None:
    result = churn_versions[-1]
    assert (result.version, result.alias) == ("3", "champion")
    assert "re-fitted to this backtest with its own recipe and training design" in result.reason
    assert "v1's own recorded AUC is " in result.reason


def test_unknown_model_is_not_found(tmp_path: Path) -> None:
    from crm_ml.models.tracking import load_model

    with pytest.raises(NotFoundError, match="No registered model named 'crm-propensity'"):
        load_model("crm-propensity@champion", project_settings(tmp_path))


def test_scoring_from_the_registry(
    settings: Settings, frame: pd.DataFrame, churn_versions: list[RegisteredVersion], duckdb_store
) -> None:
    from crm_ml.models.scoring import read_scores, score_customers

    latest = frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")
    summary = score_customers(duckdb_store, latest, "2024-10-01", settings=settings)
    assert summary["customers"].sum() == len(latest)
    scores = read_scores(duckdb_store, model_name="crm-churn", as_of="2024-10-01")
    assert set(scores["model_version"]) == {churn_versions[-1].version}


@pytest.mark.parametrize(("level", "printed"), [("ERROR", False), ("INFO", False), ("DEBUG", True)])
def test_registry_prints_follow_mlflows_log_level(
    settings: Settings, frame: pd.DataFrame, capsys, level: str, printed: bool
) -> None:
    # We report version and alias ourselves; MLflow's own lines only for debugging.
    import logging

    logger = logging.getLogger("mlflow")
    before = logger.level
    logger.setLevel(level)
    try:
        reg = train_model("propensity", frame, settings, horizon_days=90, label="purchased",
                          model_params=TINY).registered  # fmt: skip
    finally:
        logger.setLevel(before)
    err = capsys.readouterr().err
    assert ("Created version" in err) is printed
    assert reg.version  # registered either way


def _cli_project(tmp_path: Path, monkeypatch, store: Path) -> Settings:
    """Settings of a project in ``tmp_path`` that the CLI also finds (CRM_ML_HOME, MLflow)."""
    own = project_settings(tmp_path, database_url=f"duckdb:///{store}")
    monkeypatch.setenv("CRM_ML_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own.mlflow_tracking_uri)
    return own


def test_list_and_promote_versions_from_the_command_line(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch, capsys
) -> None:
    from crm_ml.cli import main
    from crm_ml.models.tracking import version_tags

    own = _cli_project(tmp_path, monkeypatch, tmp_path / "crm.duckdb")
    assert main(["models", "list", "crm-churn"]) == 2
    assert "Train one with `crm-ml train churn`" in capsys.readouterr().out

    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    weaker = train_model("churn", frame, own, horizon_days=90, model_params=WEAK).registered
    assert weaker.alias == "challenger"
    capsys.readouterr()
    assert main(["models", "list", "crm-churn"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "crm-churn:"
    assert listing[2].split()[:2] == ["2", "challenger"] and "is below champion v1's" in listing[2]
    assert listing[3].split()[:2] == ["1", "champion"]

    # Roll the champion over to v2 by hand; the reason stays on the version.
    assert main(["models", "promote", "crm-churn", "2", "--reason", "回滚测试"]) == 0
    assert version_tags("crm-churn", "2", own)["promotion_reason"] == "manual: 回滚测试"
    capsys.readouterr()
    assert main(["models", "list", "crm-churn"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[:2] == ["2", "champion"]

    assert main(["models", "promote", "crm-churn", "9", "--reason", "x"]) == 2
    assert "no version 9; registered: 2, 1" in capsys.readouterr().err
    assert main(["models", "promote", "crm-churn", "1", "--reason", " "]) == 2
    assert "Say why" in capsys.readouterr().err
    assert (
        main(["models", "promote", "crm-churn", "2", "--alias", "challenger", "--reason", "x"]) == 2
    )
    assert "is the champion; promote another version" in capsys.readouterr().err
    assert main(["models", "list", "crm'churn"]) == 2
    assert "has no quote in it" in capsys.readouterr().err


def test_score_names_the_version_and_unknown_names_list_what_exists(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch, capsys
) -> None:
    import crm_ml.features
    from crm_ml.cli import main
    from crm_ml.models.scoring import score_customers
    from crm_ml.store import Store

    own = _cli_project(tmp_path, monkeypatch, tmp_path / "data" / "crm.duckdb")
    monkeypatch.delenv("CRM_ML_DATABASE_URL", raising=False)
    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    train_model("churn", frame, own, horizon_days=90, model_params=WEAK)  # v2, challenger
    assert main(["models", "promote", "crm-churn", "2", "--reason", "manual"]) == 0
    capsys.readouterr()

    assert main(["models", "list", "crm-nope"]) == 2
    out = capsys.readouterr().out
    assert "No registered model named 'crm-nope'" in out and "registered: crm-churn." in out
    assert "crm-ml train" not in out
    assert main(["models", "promote", "crm-nope", "1", "--reason", "x"]) == 2
    assert "registered: crm-churn." in capsys.readouterr().err

    # A store whose data ends 2024-09-30, so 2024-10-01 can be scored.
    assert main(["init"]) == 0
    import_one_order(tmp_path)
    capsys.readouterr()
    assert main(["score", "--as-of", "2024-10-01", "--model", "crm-churn@nosuch"]) == 2
    err = capsys.readouterr().err
    assert "crm-churn has no alias 'nosuch'; its aliases: champion (v2)." in err
    assert "`crm-ml models list crm-churn`" in err and ".." not in err

    # From Python, given only the date, a mistyped alias also fails before the build.
    built: list[object] = []
    monkeypatch.setattr(crm_ml.features, "customer_features", lambda *a, **k: built.append(a))
    with pytest.raises(CrmMlError, match="crm-churn has no alias 'nosuch'"):
        score_customers(
            Store(own.database_url), "2024-10-01", model="crm-churn@nosuch", settings=own
        )
    assert built == []

    latest = frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")
    monkeypatch.setattr(crm_ml.features, "customer_features", lambda *a, **k: latest)
    assert main(["score", "--as-of", "2024-10-01", "--model", "crm-churn@champion"]) == 0
    assert "crm-churn@champion (version 2) as of 2024-10-01:" in capsys.readouterr().out


def test_a_version_tested_on_older_data_does_not_take_champion(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    from crm_ml.models.tracking import list_versions, resolve_version

    own = project_settings(tmp_path)
    assert train_model(
        "churn", frame, own, horizon_days=90, model_params=TINY
    ).registered.alias == ("champion")
    # The same customers a quarter earlier: the champion's recipe re-fitted to them ties.
    earlier = frame.assign(as_of=frame["as_of"] - pd.Timedelta(days=92))
    older = train_model("churn", earlier, own, horizon_days=90, model_params=TINY).registered
    assert older.alias == "challenger"
    assert older.reason == (
        "tested on older data than champion v1 (test snapshot 2024-07-01 vs 2024-10-01); "
        "promote by hand if intended"
    )
    assert resolve_version("crm-churn@champion", own) == ("crm-churn", "1")
    assert list_versions("crm-churn", own).loc[2, "promotion_reason"] == older.reason


def test_no_mlflow_download_bars_when_training_and_scoring(
    tmp_path: Path, frame: pd.DataFrame, duckdb_store, capsys, monkeypatch
) -> None:
    import os

    from crm_ml.models.scoring import score_customers
    from crm_ml.models.tracking import load_model

    switch = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    monkeypatch.delenv(switch, raising=False)
    own = project_settings(tmp_path)
    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    latest = frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")
    score_customers(duckdb_store, latest, "2024-10-01", settings=own)
    assert "Downloading artifacts" not in capsys.readouterr().err
    assert switch not in os.environ  # set for the download only
    # A user who asks for the bars still gets them.
    monkeypatch.setenv(switch, "true")
    load_model("crm-churn@champion", own)
    assert "Downloading artifacts" in capsys.readouterr().err
