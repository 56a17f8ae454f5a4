"""Temporal backtest: fit on earlier snapshots, test on a later one, against baselines.

The split simulates deploying the model on the test date. Only snapshots
whose label window has closed by then (``as_of + horizon_days <= test as_of``)
are used: the latest of them calibrates the probabilities, the earlier ones
train the trees. The same split scores the baselines (recency rule, RFM,
BG/NBD), so every row of the metrics frame is comparable.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.base import clone

from crm_ml.errors import ValidationError
from crm_ml.models.baselines import TARGETS, default_baselines
from crm_ml.models.estimators import BoostedClassifier
from crm_ml.models.metrics import (
    DEFAULT_LIST_SIZES,
    classification_metrics,
    lift_table,
    precision_at,
)
from crm_ml.models.plots import calibration_figure, figure_language, lift_figure

log = logging.getLogger(__name__)

ID_COLUMNS = ("as_of", "customer_id")
#: Label columns a training frame may carry; never used as features.
LABEL_COLUMNS = ("churned", "purchased", "downgraded", "label", "churn", "purchase")
MODEL_COLUMN = "model"


@dataclass(frozen=True)
class BacktestSplit:
    """Which snapshots train the trees, calibrate them and test the result."""

    train_as_of: tuple[pd.Timestamp, ...]
    calibration_as_of: pd.Timestamp
    test_as_of: pd.Timestamp
    horizon_days: int

    def as_params(self) -> dict[str, str]:
        """Return the split as flat strings (for MLflow params)."""
        return {
            "train_snapshots": ",".join(t.date().isoformat() for t in self.train_as_of),
            "calibration_snapshot": self.calibration_as_of.date().isoformat(),
            "test_snapshot": self.test_as_of.date().isoformat(),
            "horizon_days": str(self.horizon_days),
        }


@dataclass
class BacktestResult:
    """Everything a backtest measured.

    Attributes
    ----------
    metrics : pandas.DataFrame
        Indexed by ``model`` (``model`` first, then baselines): ``roc_auc``,
        ``pr_auc``, ``brier``, ``ece``, ``customers``, ``positives``, ``base_rate``.
    lift : pandas.DataFrame
        ``model`` plus the :func:`~crm_ml.models.metrics.lift_table` columns.
    precision : pandas.DataFrame
        ``model``, ``nominal_size`` (the list size asked for: a share below 1,
        else a number of customers) plus the
        :func:`~crm_ml.models.metrics.precision_at` columns.
    predictions : pandas.DataFrame
        Test rows: ``customer_id``, the label, and one probability column per model.
    figures : dict[str, matplotlib.figure.Figure]
        ``calibration`` and ``lift``, labelled in the backtest's ``language``.
    active_metrics : pandas.DataFrame
        ``metrics`` over the test customers who bought within :data:`ACTIVE_DAYS`
        (empty without a ``recency_days`` feature): the customers churn lists act on.
    """

    split: BacktestSplit
    metrics: pd.DataFrame
    lift: pd.DataFrame
    precision: pd.DataFrame
    predictions: pd.DataFrame
    figures: dict[str, Figure] = field(default_factory=dict)
    model: Any = None
    backtest_id: str = ""
    active_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)


def flatten_training_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the frame with ``as_of`` and ``customer_id`` as columns (moved out of the index).

    ``crm_ml.features.training_frame`` indexes its frame by (``as_of``, ``customer_id``).
    """
    levels = [name for name in frame.index.names if name in ID_COLUMNS]
    return frame.reset_index(level=levels) if levels else frame


def infer_features(frame: pd.DataFrame, *, label: str) -> list[str]:
    """Return the frame's columns minus ids and label columns, in order."""
    skip = {*ID_COLUMNS, *LABEL_COLUMNS, label}
    return [str(c) for c in frame.columns if c not in skip and not str(c).startswith("label_")]


def split_snapshots(
    frame: pd.DataFrame, *, horizon_days: int, test_as_of: str | date | None = None
) -> BacktestSplit:
    """Choose train, calibration and test snapshots from a stacked training frame.

    Raises
    ------
    ValidationError
        If fewer than two snapshots have labels that closed before the test date.
    """
    if "as_of" not in frame.columns:
        raise ValidationError("The training frame needs an 'as_of' column (one per snapshot).")
    snapshots = sorted(pd.to_datetime(frame["as_of"]).unique())
    test = pd.Timestamp(test_as_of) if test_as_of is not None else pd.Timestamp(snapshots[-1])
    if test not in snapshots:
        raise ValidationError(f"Test snapshot {test.date()} is not in the frame's as_of values.")
    closed = [pd.Timestamp(s) for s in snapshots if s + pd.Timedelta(days=horizon_days) <= test]
    if len(closed) < 2:
        raise ValidationError(
            f"A backtest on {test.date()} needs two snapshots at least {horizon_days} days "
            f"earlier (their labels must be known on the test date); the frame has "
            f"{', '.join(str(pd.Timestamp(s).date()) for s in snapshots)}. Add earlier snapshots."
        )
    return BacktestSplit(tuple(closed[:-1]), closed[-1], test, horizon_days)


def _rows(frame: pd.DataFrame, dates: Sequence[pd.Timestamp]) -> pd.DataFrame:
    return frame[pd.to_datetime(frame["as_of"]).isin(list(dates))]


def evaluate_predictions(
    predictions: pd.DataFrame,
    *,
    label: str,
    models: Sequence[str],
    list_sizes: Sequence[float] = DEFAULT_LIST_SIZES,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return ``(metrics, lift, precision)`` frames for each probability column in ``models``."""
    y = predictions[label].to_numpy(float)
    metrics = pd.DataFrame(
        {name: classification_metrics(y, predictions[name]) for name in models}
    ).T.rename_axis(MODEL_COLUMN)
    lift = pd.concat(
        [lift_table(y, predictions[m]).assign(model=m) for m in models], ignore_index=True
    )
    # nominal_size: the list size as asked (0.1, 500), which names MLflow metrics; `share`
    # is what it came to (2,001 of 20,011 customers) and changes with the population.
    precision = pd.concat(
        [
            precision_at(y, predictions[m], list_sizes=list_sizes).assign(
                model=m, nominal_size=[float(size) for size in list_sizes]
            )
            for m in models
        ],
        ignore_index=True,
    )
    return metrics, lift, precision


#: Customers who bought within this many days of a snapshot are "active": those the
#: churn-risk tag and lists act on (``churn_risk_high`` needs ``recency_days <= 180``).
#: The headline AUC also ranks customers gone for years, who are easy to call churned;
#: the AUC among active customers is the one a retention team's list sees.
ACTIVE_DAYS = 180


def active_customer_metrics(
    predictions: pd.DataFrame, recency_days: pd.Series, *, label: str, models: Sequence[str]
) -> pd.DataFrame:
    """Return :func:`evaluate_predictions`' metrics over customers active at the snapshot.

    ``recency_days`` is aligned with ``predictions``' rows; customers who never
    bought (NaN) are not active. Empty when no row is active.
    """
    active = (pd.to_numeric(recency_days, errors="coerce") <= ACTIVE_DAYS).to_numpy()
    if not active.any():
        return pd.DataFrame()
    rows = predictions[active]
    return pd.DataFrame(
        {name: classification_metrics(rows[label].to_numpy(float), rows[name]) for name in models}
    ).T.rename_axis(MODEL_COLUMN)


def backtest_id(split: BacktestSplit, test: pd.DataFrame, *, label: str) -> str:
    """Return a short hash naming a backtest: test date, horizon, test customers and labels."""
    digest = hashlib.sha256()
    digest.update(f"{split.test_as_of.isoformat()}|{split.horizon_days}|{label}".encode())
    ids = test["customer_id"].astype(str).to_numpy()
    order = np.argsort(ids, kind="stable")
    digest.update("\n".join(ids[order]).encode())
    digest.update(test[label].to_numpy(dtype=np.int8)[order].tobytes())
    return digest.hexdigest()[:16]


def _fit_baselines(baselines: Sequence[Any], cal: pd.DataFrame, label: str) -> list[Any]:
    fitted = []
    for baseline in baselines:
        try:
            fitted.append(baseline.fit(cal, cal[label].to_numpy(float)))
        except ValidationError as exc:
            log.warning("Baseline %s skipped: %s", baseline.name, exc)
    return fitted


def backtest(
    frame: pd.DataFrame,
    *,
    label: str,
    model: BoostedClassifier,
    horizon_days: int,
    features: Sequence[str] | None = None,
    test_as_of: str | date | None = None,
    baselines: Sequence[Any] | None = None,
    list_sizes: Sequence[float] = DEFAULT_LIST_SIZES,
    language: str | None = None,
) -> BacktestResult:
    """Fit a clone of ``model`` on earlier snapshots and score it and the baselines on a later one.

    Parameters
    ----------
    frame : pandas.DataFrame
        Stacked snapshots: ``as_of``, ``customer_id`` (columns or index
        levels), features and ``label``.
    baselines : sequence, optional
        Default: recency rule, RFM score and BG/NBD for the model's target.
    language : {"zh", "en"}, optional
        Language of the figures' titles, axes and legends: pass
        ``settings.language``. Default ``zh``, the settings' default.

    Raises
    ------
    ValidationError
        Before any fitting, if ``language`` is unknown or the snapshots cannot
        be split (see :func:`split_snapshots`).
    """
    language = figure_language(language)
    frame = flatten_training_frame(frame)
    split = split_snapshots(frame, horizon_days=horizon_days, test_as_of=test_as_of)
    cols = list(features) if features is not None else infer_features(frame, label=label)
    train, cal = _rows(frame, split.train_as_of), _rows(frame, [split.calibration_as_of])
    test = _rows(frame, [split.test_as_of])
    fitted = clone(model).fit(
        train[cols],
        train[label].to_numpy(float),
        calibration=(cal[cols], cal[label].to_numpy(float)),
    )
    if baselines is None and getattr(model, "target", None) in TARGETS:
        baselines = default_baselines(target=model.target, horizon_days=horizon_days)
    scorers = [
        ("model", fitted),
        *((b.name, b) for b in _fit_baselines(baselines or [], cal, label)),
    ]
    predictions = test[["customer_id", label]].reset_index(drop=True)
    for name, scorer in scorers:
        predictions[name] = scorer.predict_proba(test[cols] if name == "model" else test)[:, 1]
    names = [name for name, _ in scorers]
    metrics, lift, precision = evaluate_predictions(
        predictions, label=label, models=names, list_sizes=list_sizes
    )
    figures = _figures(predictions[[label, *names]], lift, label=label, language=language)
    log.info("Backtest on %s: AUC %.3f", split.test_as_of.date(), metrics.loc["model", "roc_auc"])
    active = (
        active_customer_metrics(
            predictions, test["recency_days"].reset_index(drop=True), label=label, models=names
        )
        if "recency_days" in test
        else pd.DataFrame()
    )
    return BacktestResult(
        split,
        metrics,
        lift,
        precision,
        predictions,
        figures,
        fitted,
        backtest_id(split, test, label=label),
        active,
    )


def _figures(
    predictions: pd.DataFrame, lift: pd.DataFrame, *, label: str, language: str
) -> dict[str, Figure]:
    """Return the backtest's ``calibration`` and ``lift`` figures, labelled in ``language``."""
    return {
        "calibration": calibration_figure(predictions, label=label, language=language),
        "lift": lift_figure(lift, language=language),
    }


def score_on_backtest(
    model: BoostedClassifier,
    frame: pd.DataFrame,
    result: BacktestResult,
    *,
    label: str,
    split: BacktestSplit | None = None,
) -> float:
    """Return the ROC-AUC of ``model``'s *recipe* re-fitted for ``result``'s test snapshot.

    The model's hyperparameters and feature list are re-fitted on the train
    and calibration snapshots of ``split`` and scored on ``result``'s test
    snapshot, so two models are compared without either having seen the test
    labels. ``split`` defaults to ``result.split`` (the new run's own
    snapshots); a champion is compared fairly only with its own training
    design (how many snapshots, how far apart) anchored at this test date,
    which :mod:`crm_ml.models.tracking` passes.

    Raises
    ------
    ValidationError
        If one of the model's features is absent from ``frame``, or ``split``
        tests on another snapshot than ``result`` or names a snapshot ``frame`` lacks.
    """
    frame = flatten_training_frame(frame)
    features = list(model.feature_names_in_)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"Cannot re-fit on this backtest: feature(s) {', '.join(missing[:10])} are absent."
        )
    split = split or result.split
    _check_refit_split(frame, split, result.split.test_as_of)
    train, cal = _rows(frame, split.train_as_of), _rows(frame, [split.calibration_as_of])
    test = _rows(frame, [split.test_as_of])
    refit = clone(model).fit(
        train[features],
        train[label].to_numpy(float),
        calibration=(cal[features], cal[label].to_numpy(float)),
    )
    p = refit.predict_proba(test[features])[:, 1]
    return classification_metrics(test[label].to_numpy(float), p)["roc_auc"]


def _check_refit_split(frame: pd.DataFrame, split: BacktestSplit, test_as_of: pd.Timestamp) -> None:
    """Refuse a re-fit split that tests elsewhere or needs snapshots the frame lacks."""
    if split.test_as_of != test_as_of:
        raise ValidationError(
            f"A re-fit must test on the backtest's snapshot {test_as_of.date()}, "
            f"got {split.test_as_of.date()}."
        )
    present = pd.DatetimeIndex(pd.to_datetime(frame["as_of"]).unique())
    absent = [s for s in (*split.train_as_of, split.calibration_as_of) if s not in present]
    if absent:
        raise ValidationError(
            "Cannot re-fit on this backtest: the frame has no snapshot "
            f"{', '.join(str(s.date()) for s in absent)}."
        )
