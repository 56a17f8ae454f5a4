"""Scores that are current for a date: what a scheduled run does before its tags and lists.

Tags, segments and lists read each model's latest scores up to their date, however
old. A weekly run that only re-ran its lists would keep last week's churn scores,
and customers who bought since would stay on the win-back list with "no purchase
for 177 days" as their reason. :func:`refresh_scores` scores each champion as of
the run's date first, unless that date is already scored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pandas as pd

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError
from crm_ml.features.spec import as_timestamp
from crm_ml.rules import latest_score_date
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

#: The production models: the scores tags, segments and lists read.
PRODUCTION_MODELS = ("crm-churn", "crm-propensity")

REFRESH_COLUMNS = ["model", "version", "scores_as_of", "customers", "action"]


def refresh_scores(
    store: Store,
    as_of: Any,
    *,
    settings: Settings,
    models: Iterable[str] = PRODUCTION_MODELS,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score each model's champion as of ``as_of`` unless its scores are already as of then.

    A model without a champion keeps its older scores (if any), with a warning:
    there is nothing registered to score with.

    Parameters
    ----------
    store : Store
        Where features are read from and scores written to.
    as_of : datetime-like
        The date of the run.
    settings : Settings
        Where the model registry is (``settings.mlflow_uri``) and the reasons' language.
    models : iterable of str
        Registered names; by default ``crm-churn`` and ``crm-propensity``.
    features : pandas.DataFrame, optional
        ``customer_features(store, as_of)`` if the caller has it; built when needed.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model``, ``version`` (None without a champion),
        ``scores_as_of`` (the date its scores are now as of, NaT if none),
        ``customers`` (scored now, else 0) and ``action`` (what was done, in words).
    """
    from crm_ml.features import customer_features
    from crm_ml.models.scoring import score_customers
    from crm_ml.models.scoring_targets import scoring_target

    on = as_timestamp(as_of)
    rows = []
    for name in models:
        with store.connect() as conn:
            latest = latest_score_date(conn, name, on)
        if latest == on:
            rows.append([name, None, latest, 0, "already scored as of this date"])
            continue
        try:
            target = scoring_target(f"{name}@champion", settings)
        except NotFoundError:
            rows.append([name, None, latest, 0, _kept(name, latest, on)])
            continue
        if features is None:
            features = customer_features(store, on)
        summary = score_customers(
            store, features, on, model=target, settings=settings, language=settings.language
        )
        rows.append([name, target.version, on, int(summary["customers"].sum()), "scored"])
    frame = pd.DataFrame(rows, columns=REFRESH_COLUMNS)
    frame["scores_as_of"] = pd.to_datetime(frame["scores_as_of"])
    return frame


def _kept(name: str, latest: datetime | None, on: datetime) -> str:
    """Say, and warn, that a model without a champion could not be scored."""
    kept = f"kept its scores as of {latest:%Y-%m-%d}" if latest else "has no scores"
    message = f"{name} has no champion to score with as of {on:%Y-%m-%d}: it {kept}"
    log.warning("%s. Train one with `crm-ml train`.", message)
    return f"no champion: {kept}"
