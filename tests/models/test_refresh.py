"""A scheduled run scores each champion as of its date before tags and lists read the scores."""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.models.refresh import refresh_scores
from crm_ml.models.scoring import read_scores, score_customers
from crm_ml.models.training import train_model
from crm_ml.rules import latest_scores

from .synthetic import TINY, make_training_frame

pytest.importorskip("mlflow")

LAST_WEEK, TODAY = "2024-09-24", "2024-10-01"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A registry with a crm-churn champion and no crm-propensity at all."""
    own = project_settings(tmp_path_factory.mktemp("refresh"))
    result = train_model("churn", make_training_frame(n=400), own, horizon_days=90,
                         model_params=TINY)  # fmt: skip
    assert result.registered.alias == "champion"
    return own


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frame = make_training_frame(n=400)
    return frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")


def test_last_weeks_scores_are_replaced_by_the_champions_scores_as_of_today(
    duckdb_store, settings, features, caplog
) -> None:
    score_customers(duckdb_store, features, LAST_WEEK, settings=settings)

    with caplog.at_level(logging.WARNING, logger="crm_ml.models.refresh"):
        done = refresh_scores(duckdb_store, TODAY, settings=settings, features=features)

    by_model = done.set_index("model")
    churn, propensity = by_model.loc[["crm-churn", "crm-propensity"]].to_dict("records")
    assert churn == {"version": "1", "scores_as_of": pd.Timestamp(TODAY),
                     "customers": len(features), "action": "scored"}  # fmt: skip
    assert propensity["action"] == "no champion: has no scores"
    assert "crm-propensity has no champion to score with as of 2024-10-01" in caplog.text
    today = read_scores(duckdb_store, model_name="crm-churn", as_of=TODAY)
    assert len(today) == len(features) and set(today["model_version"]) == {"1"}


def test_a_date_already_scored_is_not_scored_again(duckdb_store, settings, features) -> None:
    score_customers(duckdb_store, features, TODAY, settings=settings)
    with duckdb_store.connect() as conn:
        scored_at = conn.exec_driver_sql("SELECT max(scored_at) FROM score").scalar()

    done = refresh_scores(duckdb_store, TODAY, settings=settings, features=features,
                          models=["crm-churn"])  # fmt: skip

    assert done["action"].tolist() == ["already scored as of this date"]
    with duckdb_store.connect() as conn:
        assert conn.exec_driver_sql("SELECT max(scored_at) FROM score").scalar() == scored_at


def test_a_model_without_a_champion_keeps_its_older_scores_and_says_so(
    duckdb_store, settings, features
) -> None:
    score_customers(duckdb_store, features, LAST_WEEK, settings=settings)
    with duckdb_store.begin() as conn:  # last week's scores, as if written by a propensity model
        conn.exec_driver_sql("UPDATE score SET model_name = 'crm-propensity'")

    done = refresh_scores(duckdb_store, datetime(2024, 10, 1), settings=settings,
                          features=features, models=["crm-propensity"])  # fmt: skip

    assert done["action"].tolist() == ["no champion: kept its scores as of 2024-09-24"]
    assert done["scores_as_of"].tolist() == [pd.Timestamp(LAST_WEEK)]


def test_reading_last_weeks_scores_for_today_warns_with_the_command(
    duckdb_store, settings, features, caplog
) -> None:
    score_customers(duckdb_store, features, LAST_WEEK, settings=settings)

    watching = caplog.at_level(logging.WARNING, logger="crm_ml.rules.context")
    with watching, duckdb_store.connect() as conn:
        latest_scores(conn, "crm-churn", datetime(2024, 9, 24))
        assert "crm-churn" not in caplog.text  # scores of the date itself: no warning
        read = latest_scores(conn, "crm-churn", datetime(2024, 10, 1))

    assert len(read) == len(features)
    assert caplog.text.count("crm-churn scores are as of 2024-09-24, 7 days before 2024-10-01") == 1
    assert "crm-ml score --as-of 2024-10-01" in caplog.text
