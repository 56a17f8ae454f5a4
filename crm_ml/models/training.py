"""Train, backtest, log and register a churn or propensity model in one call.

``train_model("churn", frame, settings)`` is what ``crm-ml train churn`` and
the training notebook run:

1. backtest the recipe (trees on earlier snapshots, calibration on a later
   one, test on the latest; see :mod:`crm_ml.models.evaluation`) against the
   recency, RFM and BG/NBD baselines;
2. re-fit the same recipe for use (``refit=True``): trees on every snapshot
   but the latest, calibration on the latest, so the registered model has
   seen the most recent behaviour;
3. log everything to MLflow, register ``crm-churn`` / ``crm-propensity``
   (``crm-propensity-<category>`` for a category's purchases) and give the
   new version ``champion`` or ``challenger`` (see
   :mod:`crm_ml.models.tracking`).

Small data is logged as a warning before any work: a snapshot with fewer
than :data:`MIN_SNAPSHOT_CUSTOMERS` customers, or fewer than
:data:`MIN_SNAPSHOT_POSITIVES` of either class (e.g. churners and
stayers). Below that the backtest AUC moves by several hundredths from one
sample to the next, about the gap between a model and its baselines.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype
from tqdm.auto import tqdm

from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.models.baselines import BASELINE_NAMES
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
#: Fewer customers than this in a snapshot is warned about (AUC error about ±0.03 and up).
MIN_SNAPSHOT_CUSTOMERS = 1_000
#: Fewer of either class (positives or negatives) than this in a snapshot is warned about.
MIN_SNAPSHOT_POSITIVES = 100
#: A backtest AUC within this of 0.5 is warned about as no better than chance.
CHANCE_MARGIN = 0.02
#: Registered name of each kind's model (a category propensity model adds ``-<category>``).
REGISTERED_NAMES = {"churn": "crm-churn", "propensity": "crm-propensity"}


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
    category : str or None
        The product category of a propensity model's label (None: any purchase).
    target : str
        What the model learned: ``churn``, ``purchase`` or ``purchase:<category>``.
    warnings : list of str
        Why the result may not be trustworthy (too few customers or positives).
    """

    kind: str
    label: str
    features: list[str]
    model: BoostedClassifier
    backtest: BacktestResult
    registered: Any = None
    category: str | None = None
    target: str = ""
    warnings: list[str] = field(default_factory=list)


def _catalogue_names() -> set[str] | None:
    """Names ``customer_features`` builds (default windows), or None without the features layer."""
    try:
        from crm_ml.features import catalog
    except ImportError:
        return None
    table = catalog()
    return set(table["name"] if "name" in table.columns else table.index)


def default_features(frame: pd.DataFrame, *, label: str) -> list[str]:
    """Return the feature columns: those in the feature catalogue, else all but ids and labels.

    Other columns of a catalogue frame are left out with a warning: a model
    trained on them could not be fed by ``crm-ml score``.
    """
    inferred = infer_features(frame, label=label)
    names = _catalogue_names()
    known = [c for c in inferred if names is not None and c in names]
    if not known:
        return inferred
    ignored = [c for c in inferred if c not in known]
    if ignored:
        log.warning(
            "Left out %d column(s) that are not catalogue features: %s. Pass features=[...] "
            "to train on them (the model then stays challenger: `crm-ml score` cannot build "
            "them); see 'Your own features' in the README.",
            len(ignored),
            ", ".join(ignored[:10]),
        )
    return known


def unscorable_features(features: Sequence[str]) -> list[str]:
    """Return the features that ``customer_features`` (default windows) does not build.

    A champion using one would break ``crm-ml score``, the tags and the reports.
    """
    names = _catalogue_names()
    return [] if names is None else [f for f in features if f not in names]


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


def registered_name(kind: str, category: str | None = None) -> str:
    """Return the registered name of a ``kind`` model, e.g. ``crm-propensity-beauty``.

    A category propensity model learns another label (a purchase in that
    category) than ``crm-propensity`` (any purchase), so it registers under a
    name of its own: ``crm-ml score`` and the tags, which use
    ``crm-propensity@champion``, never pick it up unless asked.

    Raises
    ------
    ValidationError
        For an unknown kind, a category with a churn model, or a category that
        is not a lower-case word (``a-z``, digits, ``_``).
    """
    if kind not in REGISTERED_NAMES:
        raise ValidationError(
            f"Unknown model kind {kind!r}; expected one of {', '.join(REGISTERED_NAMES)}."
        )
    if category is None:
        return REGISTERED_NAMES[kind]
    if kind != "propensity":
        raise ValidationError(
            f"A category narrows the propensity label only; a {kind} model has none "
            f"(got category={category!r})."
        )
    if not re.fullmatch(r"[a-z0-9_]+", category):
        raise ValidationError(
            "A category is a lower-case word such as 'beauty' or 'maternity_baby', "
            f"got {category!r}."
        )
    return f"{REGISTERED_NAMES[kind]}-{category.replace('_', '-')}"


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


def small_data_warnings(frame: pd.DataFrame, *, label: str) -> list[str]:
    """Return a warning when snapshots have too few customers or too few of either class.

    Parameters
    ----------
    frame : pandas.DataFrame
        Stacked snapshots with ``as_of`` and the 0/1 ``label`` column.

    Returns
    -------
    list of str
        Empty when every snapshot has at least :data:`MIN_SNAPSHOT_CUSTOMERS`
        customers and :data:`MIN_SNAPSHOT_POSITIVES` of each class; else one
        message naming the small snapshots and the smallest one's counts.
    """
    y = pd.to_numeric(frame[label].astype(float), errors="coerce")
    counts = y.groupby(pd.to_datetime(frame["as_of"]).rename("as_of")).agg(["size", "sum"])
    counts["rarer"] = np.minimum(counts["sum"], counts["size"] - counts["sum"])
    small = counts[
        (counts["size"] < MIN_SNAPSHOT_CUSTOMERS) | (counts["rarer"] < MIN_SNAPSHOT_POSITIVES)
    ].sort_values(["rarer", "size"])
    if small.empty:
        return []
    day = pd.Timestamp(str(small.index[0])).date()
    customers, positives = int(small["size"].iloc[0]), int(small["sum"].iloc[0])
    return [
        f"{len(small)} of {len(counts)} snapshots have fewer than {MIN_SNAPSHOT_CUSTOMERS:,} "
        f"customers or {MIN_SNAPSHOT_POSITIVES} of either class (the smallest, {day}: "
        f"{customers:,} customers, {positives:,} positive, {customers - positives:,} "
        "negative). The backtest AUC is uncertain by several hundredths, and the model may "
        "do no better than the baselines: compare them before acting on its scores"
    ]


def constant_feature_warnings(frame: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """Return a warning naming the features that hold one value in every row.

    The model cannot learn from them, and no reason can ever cite them (e.g.
    points expiring within 30 days, when every snapshot falls outside the
    month before the programme's yearly expiry).
    """
    constant = [c for c in features if frame[c].nunique(dropna=False) <= 1]
    if not constant:
        return []
    shown = ", ".join(f"{c} (always {frame[c].iloc[0]})" for c in constant[:5])
    more = f" and {len(constant) - 5} more" if len(constant) > 5 else ""
    return [
        f"{len(constant)} feature(s) hold the same value for every customer in every snapshot, "
        f"so the model cannot use them and no reason will cite them: {shown}{more}"
    ]


def chance_warnings(metrics: pd.DataFrame) -> list[str]:
    """Return a warning when the model's backtest AUC is no better than chance.

    ``metrics`` is :attr:`BacktestResult.metrics` (a ``model`` row and one per
    baseline). On a handful of customers LightGBM may not split at all and give
    every customer the same score (AUC 0.5): "uncertain by several hundredths"
    would understate that.
    """
    aucs = pd.to_numeric(metrics["roc_auc"], errors="coerce")
    model = float(aucs.get("model", np.nan))
    if not np.isfinite(model) or model > 0.5 + CHANCE_MARGIN:
        return []
    text = (
        f"the model learnt nothing from this data: its backtest AUC {model:.3f} is no better "
        "than chance, so its scores would rank customers at random"
    )
    baselines = aucs.drop("model", errors="ignore").dropna()
    if len(baselines):
        best = str(baselines.idxmax())
        text += (
            f". The {BASELINE_NAMES.get(best, best)} baseline ranks them with AUC "
            f"{baselines[best]:.3f}: use it, or train again on more customers or snapshots"
        )
    return [text]


def infer_gap_days(frame: pd.DataFrame) -> int | None:
    """Return the smallest spacing of the frame's snapshots in days (None for one snapshot)."""
    snapshots = pd.Series(sorted(pd.to_datetime(frame["as_of"]).unique()))
    gaps = snapshots.diff().dropna()
    return int(gaps.min() / pd.Timedelta(days=1)) if len(gaps) else None


def _data_category(data: Any, category: str | None) -> str | None:
    """Return the category the labels were narrowed to: the TrainingSet's, or ``category``.

    Raises
    ------
    ValidationError
        If ``category`` contradicts the TrainingSet's (its labels are another category's).
    """
    if isinstance(data, pd.DataFrame):  # a plain frame does not say
        return category
    built_with = getattr(data, "category", None)
    if category == built_with or category is None:
        return built_with
    built = f"category={built_with!r}" if built_with else "no category (any purchase)"
    raise ValidationError(
        f"category={category!r} does not match the training set, which was built with "
        f"{built}. Build it with training_frame(..., category={category!r}), or leave "
        "category out to use the training set's."
    )


def target_label(kind: str, data: Any, label: str, category: str | None) -> str:
    """Name what a model learns: ``churn``, ``purchase`` or ``purchase:<category>``.

    A TrainingSet says it (``data.label``); a plain frame's ``label`` column
    or the kind's default column is the kind's label, any other column its own name.
    """
    base = None if isinstance(data, pd.DataFrame) else getattr(data, "label", None)
    if base is None:
        default = label in ("label", DEFAULT_LABELS.get(kind))
        base = TRAINING_SET_LABELS[kind] if default else label
    return f"{base}:{category}" if category else str(base)


def _lineage(store: Any, settings: Settings | None) -> dict[str, Any]:
    """Return the store URL (no password) and the store's last order, as far as known.

    ``store_last_order`` describes the store when the model was trained, not the
    training data: a model trained on snapshots up to a date may have read a
    store with later orders (``labels_until`` and ``snapshots`` say what it used).
    """
    from crm_ml.store.connection import shown_url

    url = getattr(store, "url", None) or (settings.database_url if settings else None)
    if not url:
        return {}
    out: dict[str, Any] = {
        "store_url": shown_url(url),
        "store_url_from": "store" if store is not None else "settings",
    }
    if store is not None:
        from crm_ml.features import last_order_at

        last = last_order_at(store)
        out["store_last_order"] = "" if last is None else pd.Timestamp(last).isoformat()
    return out


def training_fingerprint(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """Return a short hash of the rows a model learned from: ids, dates, label and features.

    Rows are taken in ``(as_of, customer_id)`` order, so the same data read in
    another order gives the same fingerprint, and one customer left out, one
    label or one feature value changed gives another. Logged with each training
    run: two versions with the same fingerprint learned from the same data.
    """
    order = np.lexsort((frame["customer_id"].astype(str).to_numpy(), frame["as_of"].to_numpy()))
    digest = hashlib.sha256()
    for name in ["as_of", "customer_id", *sorted(columns)]:
        column = frame[name]
        if is_numeric_dtype(column) or is_datetime64_any_dtype(column):
            values = column.to_numpy()
        else:  # text and categories: their values' hashes
            values = pd.util.hash_pandas_object(column, index=False).to_numpy()
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values[order]).tobytes())
    return digest.hexdigest()[:16]


def _run_params(
    outcome: TrainingResult,
    frame: pd.DataFrame,
    horizon_days: int,
    gap_days: int | None,
    refit_split: BacktestSplit | None,
) -> dict[str, Any]:
    """Return the run's parameters: label, windows, snapshots and row counts."""
    as_of = pd.to_datetime(frame["as_of"])
    split = outcome.backtest.split
    params: dict[str, Any] = {
        "kind": outcome.kind,
        "label": outcome.target,
        "label_column": outcome.label,
        "horizon_days": horizon_days,
        "gap_days": gap_days if gap_days is not None else "",
        "snapshots": ",".join(pd.Timestamp(s).date().isoformat() for s in sorted(as_of.unique())),
        "training_rows": len(frame),
        "training_customers": int(frame["customer_id"].nunique()),
        "backtest_train_rows": int(as_of.isin(list(split.train_as_of)).sum()),
        "backtest_calibration_rows": int((as_of == split.calibration_as_of).sum()),
        "backtest_test_rows": int((as_of == split.test_as_of).sum()),
        "refit": refit_split is not None,
        "training_data_sha256": training_fingerprint(frame, [outcome.label, *outcome.features]),
    }
    if outcome.kind == "propensity":
        params["category"] = outcome.category or "all"
    if refit_split is not None:
        params["use_calibration_snapshot"] = refit_split.calibration_as_of.date().isoformat()
    return params


def _unpack(
    kind: str, data: Any, label: str | None, horizon_days: int | None
) -> tuple[pd.DataFrame, str, int]:
    """Return ``(flat frame, label column, horizon)`` from a TrainingSet or a DataFrame."""
    # A DataFrame is never read for attributes: its "label" column would answer data.label.
    if isinstance(data, pd.DataFrame):
        frame, set_label, set_horizon = data, None, data.attrs.get("horizon_days")
    elif isinstance(getattr(data, "frame", None), pd.DataFrame):
        frame, set_label, set_horizon = data.frame, data.label, data.horizon_days
    else:
        raise ValidationError(
            "Training data must be a TrainingSet (crm_ml.features.training_frame(...)) or a "
            f"DataFrame of stacked snapshots, got {type(data).__name__}."
        )
    expected = TRAINING_SET_LABELS.get(kind)
    if set_label is not None and set_label != expected:
        raise ValidationError(
            f"A {kind} model needs a training set labelled {expected!r}, got {set_label!r}. "
            f"Build it with training_frame(..., label={expected!r})."
        )
    horizon = horizon_days or set_horizon or frame.attrs.get("horizon_days")
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
    category: str | None = None,
    gap_days: int | None = None,
    store: Any = None,
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
    category : str, optional
        Propensity only: the product category ``data`` was labelled with. A
        TrainingSet from ``training_frame(..., category=...)`` carries it, so
        pass it only with a plain frame of a category's labels. The model then
        registers as ``crm-propensity-<category>`` with the category as a
        parameter and tag, instead of replacing the any-purchase ``crm-propensity``.
    gap_days : int, optional
        The snapshots' spacing, logged as a parameter; default the smallest
        spacing of ``data``'s snapshots.
    store : Store, optional
        The store ``data`` was built from, for lineage: its URL (no password)
        and last order date are logged. Default: the settings' URL only.
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
        set or frame, its label does not fit ``kind``, or ``category`` is given
        for a churn model.
    """
    training_set_label(kind)  # a typo fails before any work
    category = _data_category(data, category)
    name = registered_name(kind, category)
    frame, label, horizon = _unpack(kind, data, label, horizon_days)
    _check_label(kind, frame, label)
    cols = list(features) if features is not None else default_features(frame, label=label)
    warnings = small_data_warnings(frame, label=label)
    for warning in warnings:
        log.warning("Few customers to learn from: %s.", warning)
    for warning in constant_feature_warnings(frame, cols):
        log.warning("Features without information: %s.", warning)
        warnings.append(warning)
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
            language=settings.language if settings is not None else None,
        )
        model, use_split = result.model, None
        for warning in chance_warnings(result.metrics):
            log.warning("No better than chance: %s.", warning)
            warnings.append(warning)
        _advance(bar, steps)
        if refit:
            model, use_split = refit_for_use(recipe, frame, cols, label)
            _advance(bar, steps)
        target = target_label(kind, data, label, category)
        outcome = TrainingResult(kind, label, cols, model, result, None, category, target, warnings)
        if register:
            gap = gap_days if gap_days is not None else infer_gap_days(frame)
            run = _RunInfo(name, horizon, gap, use_split, store)
            outcome.registered = _register(outcome, frame, settings, run)
            _advance(bar, steps)
    return outcome


def _advance(bar: Any, steps: list[str]) -> None:
    bar.update()
    if bar.n < len(steps):
        bar.set_postfix_str(steps[bar.n])


@dataclass(frozen=True)
class _RunInfo:
    """Where a model registers and what its run logs besides the backtest."""

    name: str
    horizon_days: int
    gap_days: int | None
    use_split: BacktestSplit | None
    store: Any


def _register(
    outcome: TrainingResult, frame: pd.DataFrame, settings: Settings | None, run: _RunInfo
) -> Any:
    if settings is None:
        raise ValidationError("Registering a model needs settings (where the MLflow store is).")
    from crm_ml.models import tracking

    def rescore(champion: BoostedClassifier, split: BacktestSplit) -> float:
        return score_on_backtest(
            champion, frame, outcome.backtest, label=outcome.label, split=split
        )

    lineage = _lineage(run.store, settings)
    tags = {k: str(v) for k, v in lineage.items()}
    tags["horizon_days"] = str(run.horizon_days)  # part of what the model predicts
    if outcome.kind == "propensity":
        tags["category"] = outcome.category or "all"
    if outcome.warnings:
        tags["data_warning"] = "; ".join(outcome.warnings)[:5000]
    params = _run_params(outcome, frame, run.horizon_days, run.gap_days, run.use_split)
    unscorable = unscorable_features(outcome.features)
    blocked = (
        f"uses {len(unscorable)} feature(s) customer_features does not build "
        f"({', '.join(unscorable[:5])}): `crm-ml score` could not feed it; not made champion"
        if unscorable
        else None
    )
    return tracking.log_training_run(
        model=outcome.model,
        result=outcome.backtest,
        registered_name=run.name,
        settings=settings,
        params={**params, **lineage},
        input_example=frame[outcome.features],
        rescore_champion=rescore,
        label=outcome.target,
        tags=tags,
        not_champion=blocked,
    )
