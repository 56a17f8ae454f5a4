"""Past scoring runs are measured against what their customers did next."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
from project_settings import project_settings
from sklearn.metrics import roc_auc_score

from crm_ml.config import Settings
from crm_ml.demo import generate
from crm_ml.errors import NotFoundError
from crm_ml.features import churn_labels, customer_features, training_frame
from crm_ml.models.monitoring import auc_interval, score_outcomes
from crm_ml.models.scoring import read_scores, score_customers
from crm_ml.models.training import train_model
from crm_ml.store import Store, init_store

from .synthetic import TINY

pytest.importorskip("mlflow")

# Trained on label windows up to 2024-04-01 + 90 days = 2024-06-30; the data ends 2024-12-31.
SNAPSHOTS = ["2023-07-01", "2023-10-01", "2024-01-01", "2024-04-01"]
IN_SAMPLE, MATURED, OPEN = "2024-05-01", "2024-07-01", "2024-12-01"


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Settings]:
    """A demo store, a churn champion trained on its first 18 months, and three scoring runs."""
    root = tmp_path_factory.mktemp("monitoring")
    store = Store(f"duckdb:///{root / 'crm.duckdb'}", create=True)
    init_store(store)
    generate(store, n_customers=1500, start="2023-01-01", end="2024-12-31", seed=5,
             truth_path=root / "truth.parquet")  # fmt: skip
    settings = project_settings(root)
    data = training_frame(store, SNAPSHOTS, 90, 90, label="churn")
    result = train_model("churn", data, settings, store=store, model_params=TINY)
    assert result.registered.alias == "champion"
    for as_of in (IN_SAMPLE, MATURED, OPEN):
        score_customers(store, customer_features(store, as_of), as_of, settings=settings)
    return store, settings


def _set_probabilities(store: Store, as_of: str, expression: str) -> None:
    with store.begin() as conn:
        conn.exec_driver_sql(f"UPDATE score SET probability = {expression} WHERE as_of = '{as_of}'")


@contextmanager
def _probabilities(store: Store, as_of: str, change: str, undo: str) -> Iterator[None]:
    """Rewrite a run's stored probabilities for the block (``change``), then put them back."""
    _set_probabilities(store, as_of, change)
    try:
        yield
    finally:
        _set_probabilities(store, as_of, undo)


def test_each_run_is_measured_only_when_its_window_has_closed_on_unseen_outcomes(
    scored: tuple[Store, Settings],
) -> None:
    store, settings = scored
    outcomes = score_outcomes(store, "crm-churn", settings=settings)

    assert outcomes.index.strftime("%Y-%m-%d").tolist() == [IN_SAMPLE, MATURED, OPEN]
    assert outcomes["status"].tolist() == ["in-sample", "measured", "open"]
    assert outcomes.loc[IN_SAMPLE, "verdict"] == (
        "not a test: v1 learned outcomes up to 2024-06-30, after this date"
    )
    assert outcomes.loc[OPEN, "verdict"] == "outcomes known after 2025-03-01"
    assert outcomes.loc[[IN_SAMPLE, OPEN], "roc_auc"].isna().all()
    assert not outcomes["alert"].any()


def test_a_measured_run_is_scored_against_the_customers_churn_in_its_window(
    scored: tuple[Store, Settings],
) -> None:
    store, settings = scored
    run = score_outcomes(store, "crm-churn", settings=settings).loc[MATURED]

    scores = read_scores(store, model_name="crm-churn", as_of=MATURED)["probability"]
    churned = churn_labels(store, MATURED, 90)["churned"].reindex(scores.index)
    assert run["customers"] == len(scores)
    assert run["actual"] == churned.sum()
    assert run["expected"] == pytest.approx(scores.sum())
    assert run["roc_auc"] == pytest.approx(roc_auc_score(churned, scores))
    assert run["auc_low"] < run["roc_auc"] < run["auc_high"]
    assert run["verdict"] == "as in its backtest (v1)"


def test_a_run_that_ranks_customers_backwards_raises_an_alert(
    scored: tuple[Store, Settings],
) -> None:
    store, settings = scored
    with _probabilities(store, MATURED, "1 - probability", undo="1 - probability"):
        run = score_outcomes(store, "crm-churn", settings=settings).loc[MATURED]

    assert run["alert"]
    assert run["roc_auc"] < 0.5 < run["backtest_auc"]
    assert run["verdict"].startswith("ranks worse than in its backtest: AUC ")
    assert "retrain (crm-ml train)" in run["verdict"]


def test_a_run_whose_probabilities_are_half_what_happened_under_predicts(
    scored: tuple[Store, Settings],
) -> None:
    store, settings = scored
    with _probabilities(store, MATURED, "probability / 2", undo="probability * 2"):
        run = score_outcomes(store, "crm-churn", settings=settings).loc[MATURED]

    assert run["alert"]
    assert run["verdict"] == (
        f"under-predicts: {run['expected']:,.0f} expected, {run['actual']:,.0f} did"
    )


def test_a_model_with_no_scores_is_named_with_those_that_have_some(
    scored: tuple[Store, Settings],
) -> None:
    store, settings = scored
    with pytest.raises(NotFoundError, match="crm-churn"):
        score_outcomes(store, "crm-propensity", settings=settings)


def test_the_auc_interval_narrows_with_more_customers() -> None:
    small = auc_interval(0.8, 50, 50)
    large = auc_interval(0.8, 5000, 5000)
    assert small[0] < large[0] < 0.8 < large[1] < small[1]
    assert all(math.isnan(end) for end in auc_interval(0.8, 0, 10))  # one class only


def test_models_list_shows_where_each_versions_labels_end(scored: tuple[Store, Settings]) -> None:
    from crm_ml.models.tracking import list_versions

    versions = list_versions("crm-churn", scored[1])
    assert versions.loc[1, "labels_until"] == pd.Timestamp("2024-06-30")


def test_models_check_prints_each_run_saves_the_figure_and_exits_1_on_an_alert(
    scored: tuple[Store, Settings], monkeypatch: pytest.MonkeyPatch, capsys, tmp_path
) -> None:
    from crm_ml.cli import main

    store, settings = scored
    monkeypatch.setenv("CRM_ML_HOME", str(settings.root))
    monkeypatch.setenv("CRM_ML_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    figure = tmp_path / "outcomes.png"

    assert main(["models", "check", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "as in its backtest (v1)" in out and "outcomes known after 2025-03-01" in out
    assert "crm-propensity" not in out  # no scores: nothing to check
    assert figure.read_bytes().startswith(b"\x89PNG")

    with _probabilities(store, MATURED, "1 - probability", undo="1 - probability"):
        assert main(["models", "check", "crm-churn"]) == 1
    assert "ranks worse than in its backtest" in capsys.readouterr().out


def test_the_outcomes_figure_says_when_no_run_has_closed(scored: tuple[Store, Settings]) -> None:
    from crm_ml.models.monitoring import check_models
    from crm_ml.models.plots import outcomes_figure

    store, settings = scored
    checks = check_models(store, settings=settings)
    only_open = checks[checks["status"] != "measured"]

    texts = [t.get_text() for t in outcomes_figure(only_open, language="en").axes[0].texts]
    assert texts == ["No scoring run has a closed outcome window yet"]
    drawn = outcomes_figure(checks, language="zh").axes[0]
    assert not drawn.texts and len(drawn.collections) >= 2  # interval bars and backtest markers


def test_looking_back_from_an_earlier_date_uses_only_what_was_known_by_then(
    scored: tuple[Store, Settings],
) -> None:
    from crm_ml.models.monitoring import check_models

    store, settings = scored
    checks = check_models(store, settings=settings, until="2024-09-01").loc["crm-churn"]

    assert checks.index.strftime("%Y-%m-%d").tolist() == [IN_SAMPLE, MATURED]  # not 2024-12-01
    assert checks.loc[MATURED, "verdict"] == "outcomes known after 2024-09-29"


def test_a_run_of_a_version_the_registry_no_longer_holds_is_listed_not_measured(
    scored: tuple[Store, Settings],
) -> None:
    store, settings = scored
    with store.begin() as conn:
        conn.exec_driver_sql(f"UPDATE score SET model_version = '7' WHERE as_of = '{OPEN}'")
    try:
        run = score_outcomes(store, "crm-churn", settings=settings).loc[OPEN]
    finally:
        with store.begin() as conn:
            conn.exec_driver_sql(f"UPDATE score SET model_version = '1' WHERE as_of = '{OPEN}'")

    assert (run["status"], run["alert"]) == ("unknown", False)
    assert run["verdict"] == (
        "v7 is not in the registry (registered: 1): its label and horizon are unknown"
    )
