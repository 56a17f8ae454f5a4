"""Train, backtest, log and register a churn or propensity model in one call.

``train_model("churn", frame, settings)`` is what ``crm-ml train churn`` and
the training notebook run:

1. backtest the recipe (trees on earlier snapshots, calibration on a later
   one, test on the latest; see :mod:`crm_ml.models.evaluation`) against the
   recency, RFM and BG/NBD baselines;
2. re-fit the same recipe for use (``refit=True``): trees on every snapshot
   but the latest, calibration on the latest, so the registered model has
   seen the most recent behaviour;
3. log everything to MLflow, register ``crm-churn`` / ``crm-propensity`` and
   give the new version ``champion`` or ``challenger`` (see
   :mod:`crm_ml.models.tracking`).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import pandas as pd
from tqdm.auto import tqdm

from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.models.estimators import BoostedClassifier, ChurnModel, PropensityModel
from crm_ml.models.evaluation import (
    BacktestResult,
    BacktestSplit,
    backtest,
    flatten_training_frame,
    infer_features,
    score_on_backtest,
)

log = logging.getLogger(__name__)

Kind = Literal["churn", "propensity"]
MODEL_KINDS: dict[str, type[BoostedClassifier]] = {
    "churn": ChurnModel,
    "propensity": PropensityModel,
}
#: Label column of each kind in a plain training frame without a ``label`` column.
DEFAULT_LABELS = {"churn": "churned", "propensity": "purchased"}
#: The ``label`` kind of ``crm_ml.features.training_frame`` that each model needs.
TRAINING_SET_LABELS = {"churn": "churn", "propensity": "purchase"}


@dataclass
class TrainingResult:
    """What :func:`train_model` produced.

    Attributes
    ----------
    model : BoostedClassifier
        The model for use (re-fitted on all snapshots when ``refit``).
    backtest : BacktestResult
        Metrics, tables and figures of the recipe's backtest.
    registered : RegisteredVersion or None
        Name, version, alias and reason, when registered in MLflow.
    """

    kind: str
    label: str
    features: list[str]
    model: BoostedClassifier
    backtest: BacktestResult
    registered: Any = None


def default_features(frame: pd.DataFrame, *, label: str) -> list[str]:
    """Return the feature columns: those in the feature catalogue, else all but ids and labels."""
    inferred = infer_features(frame, label=label)
    try:
        from crm_ml.features import catalog
    except ImportError:
        return inferred
    table = catalog()
    names = set(table["name"] if "name" in table.columns else table.index)
    known = [c for c in inferred if c in names]
    return known or inferred


def training_set_label(kind: str) -> str:
    """Return the ``label`` of ``training_frame`` that a ``kind`` of model learns from.

    Raises
    ------
    ValidationError
        If ``kind`` is not ``churn`` or ``propensity`` (with the closest one, if any).
    """
    if kind in TRAINING_SET_LABELS:
        return TRAINING_SET_LABELS[kind]
    close = difflib.get_close_matches(str(kind), list(MODEL_KINDS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValidationError(
        f"Unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}.{hint}"
    )


def _check_label(kind: str, frame: pd.DataFrame, label: str) -> None:
    if label not in frame.columns:
        raise ValidationError(
            f"The training frame has no label column {label!r} for {kind}; its columns are "
            f"{', '.join(map(str, frame.columns[:30]))}. "
            "Pass label=... or build the frame with labels."
        )


def refit_for_use(
    model: BoostedClassifier, frame: pd.DataFrame, features: Sequence[str], label: str
) -> tuple[BoostedClassifier, BacktestSplit]:
    """Fit the recipe on every snapshot but the latest, calibrated on the latest."""
    as_of = pd.to_datetime(frame["as_of"])
    snapshots = sorted(as_of.unique())
    if len(snapshots) < 2:
        raise ValidationError("Re-fitting needs at least two snapshots (trees, then calibration).")
    latest = pd.Timestamp(snapshots[-1])
    train, cal = frame[as_of < latest], frame[as_of == latest]
    cols = list(features)
    fitted = model.fit(
        train[cols],
        train[label].to_numpy(float),
        calibration=(cal[cols], cal[label].to_numpy(float)),
    )
    split = BacktestSplit(tuple(pd.Timestamp(s) for s in snapshots[:-1]), latest, latest, 0)
    return fitted, split


def _run_params(
    kind: str, label: str, frame: pd.DataFrame, horizon_days: int, refit_split: BacktestSplit | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "kind": kind,
        "label": label,
        "horizon_days": horizon_days,
        "gap_days": frame.attrs.get("gap_days", ""),
        "snapshots": ",".join(
            pd.Timestamp(s).date().isoformat() for s in sorted(frame["as_of"].unique())
        ),
        "training_rows": len(frame),
        "refit": refit_split is not None,
    }
    if refit_split is not None:
        params["use_calibration_snapshot"] = refit_split.calibration_as_of.date().isoformat()
    return params


def _unpack(
    kind: str, data: Any, label: str | None, horizon_days: int | None
) -> tuple[pd.DataFrame, str, int]:
    """Return ``(flat frame, label column, horizon)`` from a TrainingSet or a DataFrame."""
    frame = data.frame if hasattr(data, "frame") else data
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(
            "Training data must be a TrainingSet (crm_ml.features.training_frame(...)) or a "
            f"DataFrame of stacked snapshots, got {type(data).__name__}."
        )
    expected = TRAINING_SET_LABELS.get(kind)
    if hasattr(data, "label") and data.label != expected:
        raise ValidationError(
            f"A {kind} model needs a training set labelled {expected!r}, got {data.label!r}. "
            f"Build it with training_frame(..., label={expected!r})."
        )
    horizon = horizon_days or getattr(data, "horizon_days", None) or frame.attrs.get("horizon_days")
    if not horizon:
        raise ValidationError("Pass horizon_days (the label window) with a plain DataFrame.")
    frame = flatten_training_frame(frame)
    if label is None:
        label = "label" if "label" in frame.columns else DEFAULT_LABELS.get(kind, "")
    return frame, label, int(horizon)


def train_model(
    kind: Kind,
    data: Any,
    settings: Settings | None,
    *,
    horizon_days: int | None = None,
    label: str | None = None,
    features: Sequence[str] | None = None,
    test_as_of: str | date | None = None,
    model_params: Mapping[str, Any] | None = None,
    refit: bool = True,
    register: bool = True,
    progress: bool = False,
) -> TrainingResult:
    """Backtest, fit, log and register a churn or propensity model.

    Parameters
    ----------
    kind : {"churn", "propensity"}
    data : TrainingSet or pandas.DataFrame
        ``crm_ml.features.training_frame(...)`` output (its label kind must
        match: ``churn`` / ``purchase``), or a frame of stacked snapshots with
        ``as_of`` and ``customer_id`` (columns or index), features and a label
        column (``label``, else ``churned`` / ``purchased``).
    settings : Settings or None
        Where the MLflow store lives; may be None only when ``register=False``.
    horizon_days : int, optional
        The label window (taken from a TrainingSet when not given); used by
        the backtest split and the BG/NBD baseline.
    model_params : mapping, optional
        Estimator keyword arguments (``n_estimators``, ``calibration``...).
    refit : bool
        Re-fit on all snapshots for use (True) or register the backtest model itself.
    register : bool
        Log to MLflow and register (requires ``settings``).
    progress : bool
        Show a progress bar over the steps: backtest, re-fit, register.

    Raises
    ------
    ValidationError
        Before any work, if ``kind`` is unknown, ``data`` is not a training
        set or frame, or its label does not fit ``kind``.
    """
    training_set_label(kind)  # a typo fails before any work
    frame, label, horizon = _unpack(kind, data, label, horizon_days)
    _check_label(kind, frame, label)
    cols = list(features) if features is not None else default_features(frame, label=label)
    recipe = MODEL_KINDS[kind](**dict(model_params or {}))
    steps = ["backtest", *(["re-fit"] if refit else []), *(["register"] if register else [])]
    with tqdm(total=len(steps), desc=f"training {kind}", unit="step", disable=not progress) as bar:
        bar.set_postfix_str(steps[0])
        result = backtest(
            frame,
            label=label,
            model=recipe,
            horizon_days=horizon,
            features=cols,
            test_as_of=test_as_of,
        )
        model, use_split = result.model, None
        _advance(bar, steps)
        if refit:
            model, use_split = refit_for_use(recipe, frame, cols, label)
            _advance(bar, steps)
        outcome = TrainingResult(kind, label, cols, model, result)
        if register:
            outcome.registered = _register(outcome, frame, settings, horizon, use_split)
            _advance(bar, steps)
    return outcome


def _advance(bar: Any, steps: list[str]) -> None:
    bar.update()
    if bar.n < len(steps):
        bar.set_postfix_str(steps[bar.n])


def _register(
    outcome: TrainingResult,
    frame: pd.DataFrame,
    settings: Settings | None,
    horizon_days: int,
    use_split: BacktestSplit | None,
) -> Any:
    if settings is None:
        raise ValidationError("Registering a model needs settings (where the MLflow store is).")
    from crm_ml.models import tracking

    def rescore(champion: BoostedClassifier) -> float:
        return score_on_backtest(champion, frame, outcome.backtest, label=outcome.label)

    return tracking.log_training_run(
        model=outcome.model,
        result=outcome.backtest,
        registered_name=tracking.REGISTERED_NAMES[outcome.kind],
        settings=settings,
        params=_run_params(outcome.kind, outcome.label, frame, horizon_days, use_split),
        input_example=frame[outcome.features],
        rescore_champion=rescore,
    )
