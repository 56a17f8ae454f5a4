"""How past scores turned out: each scoring date's probabilities against what customers then did.

A version's backtest says how well it ranked customers at training time. Behaviour
drifts (a new competitor, a changed programme, a data feed that broke), and a
model that ranked well last year may rank badly now while still writing
confident scores. :func:`score_outcomes` checks every stored scoring run of a
model whose label window has closed: the customers scored as of a date are
labelled by what they did in the following ``horizon`` days (the label the
version learned, from the version's MLflow tags) and the run's ranking and
calibration are measured against those outcomes, next to the version's own
backtest AUC.

A run is only a test of the version that made it when the version did not learn
those outcomes: a run dated before the end of the version's latest label window
(``labels_until``, e.g. a back-filled run) is marked *in-sample* and not measured.
A run whose window ends after the data is *open* until then.

Read the verdict with the team's actions in mind: customers put on retention
lists were contacted, and those the contact kept make the churn model look
worse than it is. The campaign control groups (:mod:`crm_ml.analysis.campaigns`)
measure that effect.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, cast

import pandas as pd
from sqlalchemy import func, select
from tqdm.auto import tqdm

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError
from crm_ml.features import churn_labels, last_order_at, purchase_labels
from crm_ml.features.span import end_of_data
from crm_ml.features.spec import as_timestamp
from crm_ml.models.metrics import classification_metrics, lift_table
from crm_ml.models.refresh import PRODUCTION_MODELS
from crm_ml.models.scoring import SCORE_TABLE, read_scores
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

#: One row per scoring run (indexed by ``as_of``): these columns, in this order.
OUTCOME_COLUMNS = [
    "model_version",
    "status",
    "customers",
    "horizon_days",
    "window_ends",
    "expected",
    "actual",
    "roc_auc",
    "auc_low",
    "auc_high",
    "backtest_auc",
    "brier",
    "ece",
    "top_decile_lift",
    "alert",
    "verdict",
]

#: What a measured run reports; NaN for a run that is not measured.
MEASURES = (
    "expected",
    "actual",
    "roc_auc",
    "auc_low",
    "auc_high",
    "brier",
    "ece",
    "top_decile_lift",
)

#: A run whose outcomes differ from its probabilities by more than this share of the
#: expected count, and by more than chance allows, over- or under-predicts.
CALIBRATION_TOLERANCE = 0.10
#: How many standard deviations from the expected count chance does not explain.
CHANCE_LIMIT = 3.0


def score_outcomes(
    store: Store,
    model_name: str = "crm-churn",
    *,
    settings: Settings,
    until: datetime | date | str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Measure each stored scoring run of ``model_name`` against what its customers did next.

    Parameters
    ----------
    store : Store
        Where the scores and the orders are.
    model_name : str
        The key scores are stored under: ``crm-churn`` (the champion's runs),
        ``crm-propensity``, a category model, or a shadow run's reference
        (``crm-churn@challenger``, ``crm-churn/5``).
    settings : Settings
        Where the model registry is: each version's label, horizon, backtest AUC
        and the end of its training labels come from there.
    until : datetime-like, optional
        Look back from this date, as a report for it would: runs dated after it
        are left out, and a window closes only by then. Default: the end of the data.
    progress : bool
        Show a progress bar over the runs.

    Returns
    -------
    pandas.DataFrame
        One row per scoring date (``as_of``, oldest first): ``model_version``;
        ``status`` (``measured``; ``open``: the window ends after the data or ``until``;
        ``in-sample``: the version learned these outcomes; ``unknown``: the
        registry no longer holds the version); ``customers`` scored;
        ``horizon_days`` and ``window_ends``; ``expected`` (customers the
        probabilities predict, their sum) and ``actual`` (those who did);
        ``roc_auc`` with its 95 % interval ``auc_low``–``auc_high``
        (Hanley–McNeil); the version's ``backtest_auc``; ``brier``; ``ece``;
        ``top_decile_lift``; ``alert`` (True when a measured run ranks worse
        than its backtest, beyond its interval, or over- or under-predicts
        beyond chance and :data:`CALIBRATION_TOLERANCE`) and a ``verdict`` in
        words. Measures are NaN unless ``status`` is ``measured``.

    Raises
    ------
    NotFoundError
        If no scores are stored under ``model_name``, or its registered name
        has no versions in the registry.
    """
    from crm_ml.models.tracking import list_versions

    runs = _scoring_runs(store, model_name)
    versions = list_versions(_registered_name(model_name), settings)
    last = last_order_at(store)
    data_end = end_of_data(last) if last is not None else None
    if until is not None:
        until = as_timestamp(until)
        runs = [run for run in runs if run[0] <= until]
        data_end = min(data_end, until) if data_end is not None else None
    rows = []
    bar = tqdm(runs, desc=f"{model_name}: outcomes", leave=False, disable=not progress)
    for as_of, version, customers in bar:
        about = _version_facts(versions, version, model_name)
        rows.append(_outcome(store, model_name, as_of, version, customers, about, data_end))
    frame = pd.DataFrame(rows, columns=["as_of", *OUTCOME_COLUMNS]).set_index("as_of")
    return frame.astype({"customers": "int64", "horizon_days": "Int64", "alert": "bool"})


def check_models(
    store: Store,
    *,
    settings: Settings,
    models: Iterable[str] = PRODUCTION_MODELS,
    until: datetime | date | str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Return :func:`score_outcomes` of each model with scores, indexed by ``model``, ``as_of``.

    A model with no stored scores, or none registered, is left out with a log line:
    it has no runs to check.
    """
    found = {}
    for name in models:
        try:
            found[name] = score_outcomes(
                store, name, settings=settings, until=until, progress=progress
            )
        except NotFoundError as exc:
            log.info("%s: nothing to check: %s", name, exc)
    if not found:
        empty = pd.DataFrame(columns=["model", "as_of", *OUTCOME_COLUMNS])
        return empty.set_index(["model", "as_of"])
    return pd.concat(found, names=["model"])


def _registered_name(model_name: str) -> str:
    """``crm-churn@challenger`` and ``crm-churn/5`` are runs of ``crm-churn``."""
    return model_name.split("@")[0].split("/")[0]


def _scoring_runs(store: Store, model_name: str) -> list[tuple[datetime, str, int]]:
    """Return (as_of, version, customers) of each stored run, oldest first."""
    table = SCORE_TABLE
    query = (
        select(table.c.as_of, func.max(table.c.model_version), func.count())
        .where(table.c.model_name == model_name)
        .group_by(table.c.as_of)
        .order_by(table.c.as_of)
    )
    with store.connect() as conn:
        runs = [
            (pd.Timestamp(a).to_pydatetime(), str(v), int(n)) for a, v, n in conn.execute(query)
        ]
    if not runs:
        read_scores(store, model_name=model_name, as_of=datetime(1970, 1, 1))  # names the keys
    return runs


def _version_facts(versions: pd.DataFrame, version: str, model_name: str) -> dict[str, Any]:
    """Return the label, horizon, backtest AUC and end of training labels of a version.

    A version the registry does not hold (deleted, or scores written by hand) has
    none of them: ``missing`` says so, and its runs are not measured.
    """
    if not version.isdigit() or int(version) not in versions.index:
        registered = ", ".join(map(str, versions.index))
        return {
            "missing": f"v{version} is not in the registry (registered: {registered}): "
            "its label and horizon are unknown",
            "horizon_days": None,
            "backtest_auc": math.nan,
            "labels_until": pd.NaT,
        }
    row = versions.loc[int(version)]
    horizon = str(row["horizon_days"])
    return {
        "label": row["label"] or _label_from_name(_registered_name(model_name)),
        "horizon_days": int(horizon) if horizon.isdigit() else None,
        "backtest_auc": float(cast(float, row["backtest_auc"])),
        "labels_until": row["labels_until"],
    }


def _label_from_name(name: str) -> str:
    """Return the label of a version registered before labels were tagged, from its name."""
    if name == "crm-churn":
        return "churn"
    category = name.removeprefix("crm-propensity").removeprefix("-")
    return f"purchase:{category}" if category else "purchase"


def _outcome(
    store: Store,
    model_name: str,
    as_of: datetime,
    version: str,
    customers: int,
    about: dict[str, Any],
    data_end: datetime | None,
) -> dict[str, Any]:
    """Return one run's values of :data:`OUTCOME_COLUMNS`, measured if its window has closed."""
    horizon = about["horizon_days"]
    ends = as_of + pd.Timedelta(days=horizon) if horizon else pd.NaT
    measures = dict.fromkeys(MEASURES, math.nan)
    findings: list[str] = []
    if "missing" in about:
        status, verdict = "unknown", about["missing"]
    elif horizon is None:
        status, verdict = "open", "horizon unknown: the version has no horizon_days"
    elif pd.notna(about["labels_until"]) and as_of < about["labels_until"]:
        status = "in-sample"
        verdict = (
            f"not a test: v{version} learned outcomes up to "
            f"{about['labels_until']:%Y-%m-%d}, after this date"
        )
    elif data_end is None or ends > data_end:
        status, verdict = "open", f"outcomes known after {ends:%Y-%m-%d}"
    else:
        status = "measured"
        measures = _measure(store, model_name, as_of, horizon, about["label"])
        findings = _findings(measures, about["backtest_auc"])
        verdict = "; ".join(findings) or f"as in its backtest (v{version})"
    return {
        **measures,  # with the variance used for the verdict: the frame keeps only its columns
        "as_of": as_of,
        "model_version": version,
        "status": status,
        "customers": customers,
        "horizon_days": horizon,
        "window_ends": ends,
        "backtest_auc": about["backtest_auc"],
        "alert": bool(findings),
        "verdict": verdict,
    }


def _labels(store: Store, as_of: datetime, horizon: int, label: str) -> pd.Series:
    """Return what each customer did in the window, as the version's label defines it."""
    if label == "churn":
        return churn_labels(store, as_of, horizon)["churned"]
    kind, _, category = label.partition(":")
    if kind != "purchase":
        raise NotFoundError(f"Cannot label {label!r} outcomes; expected churn or purchase.")
    return purchase_labels(store, as_of, horizon, category=category or None)["purchased"]


def _measure(
    store: Store, model_name: str, as_of: datetime, horizon: int, label: str
) -> dict[str, float]:
    """Measure one run's probabilities against its customers' outcomes."""
    scores = read_scores(store, model_name=model_name, as_of=as_of)["probability"]
    outcome = _labels(store, as_of, horizon, label).reindex(scores.index)
    # A customer the label leaves out (a record merged away since) has no outcome.
    known = outcome.notna()
    y, p = outcome[known].astype(bool).to_numpy(), scores[known].to_numpy(dtype=float)
    metrics = classification_metrics(y, p)
    low, high = auc_interval(metrics["roc_auc"], int(y.sum()), int((~y).sum()))
    lift = lift_table(y, p)["lift"].iloc[0] if y.any() else math.nan
    return {
        "expected": float(p.sum()),
        "actual": float(y.sum()),
        "roc_auc": metrics["roc_auc"],
        "auc_low": low,
        "auc_high": high,
        "brier": metrics["brier"],
        "ece": metrics["ece"],
        "top_decile_lift": float(lift),
        "variance": float((p * (1 - p)).sum()),
    }


def auc_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """Return the 95 % interval of a ROC-AUC (Hanley & McNeil, 1982); NaN without both classes."""
    if math.isnan(auc) or positives == 0 or negatives == 0:
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    half = 1.96 * math.sqrt(max(variance, 0.0))
    return max(auc - half, 0.0), min(auc + half, 1.0)


def _findings(measures: dict[str, float], backtest_auc: float) -> list[str]:
    """Say in words where a run ranked or predicted worse than its version's backtest promised."""
    findings = []
    if measures["auc_high"] < backtest_auc:
        findings.append(
            f"ranks worse than in its backtest: AUC {measures['roc_auc']:.3f} "
            f"(95% {measures['auc_low']:.3f}–{measures['auc_high']:.3f}) vs "
            f"{backtest_auc:.3f}; retrain (crm-ml train) or check the data feeds"
        )
    expected, actual = measures["expected"], measures["actual"]
    beyond_chance = abs(actual - expected) > CHANCE_LIMIT * math.sqrt(measures["variance"])
    if beyond_chance and abs(actual - expected) > CALIBRATION_TOLERANCE * expected:
        direction = "over-predicts" if expected > actual else "under-predicts"
        findings.append(f"{direction}: {expected:,.0f} expected, {actual:,.0f} did")
    return findings


__all__ = [
    "CALIBRATION_TOLERANCE",
    "OUTCOME_COLUMNS",
    "auc_interval",
    "check_models",
    "score_outcomes",
]
