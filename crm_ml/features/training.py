"""Training sets: features at several snapshot dates, each with the label that followed it.

Every snapshot's label window ``[as_of, as_of + horizon)`` must end by the
end of the data (the midnight after the last order's day), or the label would
call everyone a churner; such a snapshot is refused rather than silently
mislabelled (:func:`~crm_ml.features.labels.check_label_window`).

Customers erased on request (``crm-ml customers erase``) are left out of every
snapshot: nothing more is computed about an erased person, and a model learning
from their history would be. Their orders still mark where the data ends.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features.backend import TableSource, open_tables
from crm_ml.features.build import DEFAULT_WINDOWS, ProgressCallback, customer_features
from crm_ml.features.labels import (
    check_horizon,
    check_label_window,
    churn_labels,
    last_order_at,
    purchase_labels,
    stored_category,
    tier_downgrade_labels,
)
from crm_ml.features.spec import FeatureWindows, as_timestamp
from crm_ml.store.connection import Store
from crm_ml.store.erased import erased_ids, erased_note, is_erased

log = logging.getLogger(__name__)

LABEL_KINDS = ("churn", "purchase", "tier_downgrade")
#: Snapshots and their spacing that `crm-ml train` and the training notebook stack by default.
#: A champion is re-fitted with its own design when compared on another backtest, so the two
#: entry points keep the same one.
DEFAULT_SNAPSHOTS, DEFAULT_GAP_DAYS = 5, 90


@dataclass(frozen=True)
class TrainingSet:
    """Stacked snapshots and their labels.

    Attributes
    ----------
    frame : pandas.DataFrame
        Indexed by (``as_of``, ``customer_id``); the feature columns, then a
        bool column ``label``.
    prevalence : pandas.DataFrame
        Indexed by ``as_of``; columns ``customers``, ``positives``,
        ``prevalence`` and ``label_end`` (end of the label window).
    label : str
        ``churn``, ``purchase`` or ``tier_downgrade``.
    horizon_days : int
        Length of the label window.
    category : str or None
        The product category a ``purchase`` label is narrowed to (None: any
        purchase). Training reads it, so a category's labels cannot be
        registered as the any-purchase model by mistake.
    erased : int
        Customers erased on request left out of the snapshots they were in.
    """

    frame: pd.DataFrame
    prevalence: pd.DataFrame
    label: str
    horizon_days: int
    category: str | None = None
    erased: int = 0

    @property
    def erased_note(self) -> str:
        """Say how many erased customers were left out, and why; empty for none."""
        return erased_note(self.erased, "the training set")


def _label_function(label: str, category: str | None) -> Callable[..., pd.DataFrame]:
    if label == "churn":
        return churn_labels
    if label == "purchase":
        return lambda store, as_of, horizon: purchase_labels(
            store, as_of, horizon, category=category
        )
    if label == "tier_downgrade":
        return tier_downgrade_labels
    raise ConfigError(f"Unknown label {label!r}; expected one of {', '.join(LABEL_KINDS)}.")


def snapshot_dates(
    data_end: datetime | date | str, count: int, horizon_days: int, gap_days: int
) -> list[datetime]:
    """``count`` midnights ``gap_days`` apart, the last one's label window ending by ``data_end``.

    ``data_end`` takes the date forms of ``as_of`` (datetime, date, ``'2024-10-01'``...).

    Returns
    -------
    list of datetime
        Oldest first.

    Raises
    ------
    ConfigError
        If ``count`` is not positive or ``data_end`` is not a date.
    """
    if count <= 0:
        raise ConfigError(f"snapshots must be a positive count or a list of dates; got {count}.")
    latest = as_timestamp(data_end, what="data_end") - timedelta(days=horizon_days)
    latest = datetime(latest.year, latest.month, latest.day)
    return [latest - timedelta(days=gap_days * k) for k in range(count - 1, -1, -1)]


def _check_snapshots(
    dates: Sequence[datetime], horizon_days: int, gap_days: int, last_order: datetime
) -> None:
    for earlier, later in itertools.pairwise(dates):
        if later - earlier < timedelta(days=gap_days):
            raise ConfigError(
                f"Snapshots {earlier:%Y-%m-%d} and {later:%Y-%m-%d} are closer than "
                f"gap_days={gap_days}. Space them at least {gap_days} days apart, "
                "or lower gap_days."
            )
    for as_of in dates:
        check_label_window(as_of, horizon_days, last_order, what="Snapshot")
    if gap_days < horizon_days:
        log.warning(
            "gap_days=%d < horizon_days=%d: consecutive snapshots' label windows overlap",
            gap_days,
            horizon_days,
        )


def resolve_snapshots(
    store: TableSource,
    snapshots: int | Iterable[datetime | date | str],
    horizon_days: int,
    gap_days: int,
    *,
    until: datetime | date | str | None = None,
) -> list[datetime]:
    """Return the snapshot dates to use, oldest first, checked against the data's end.

    A count of snapshots ends as late as the data allows (its last label window
    ends by the last order), or by ``until`` if that is earlier: a report date
    before the data's end. Every caller choosing by count (``crm-ml train``,
    the training notebook) gets the same dates on the same data.

    Raises
    ------
    ConfigError
        For no snapshots, a non-positive gap, or snapshots closer than ``gap_days``.
    ValidationError
        If the store has no orders, or a label window runs past the last order.
    """
    check_horizon(horizon_days)
    if isinstance(gap_days, bool) or not isinstance(gap_days, int) or gap_days <= 0:
        raise ConfigError(f"gap_days must be a positive whole number of days; got {gap_days!r}.")
    last_order = last_order_at(store)
    if last_order is None:
        raise ValidationError("The store has no orders, so no label can be computed. Load orders.")
    if isinstance(snapshots, int):
        # From the last order, not end_of_data: a day before the latest date the data allows,
        # as training always picked, so backtests stay comparable with registered champions'.
        end = last_order if until is None else min(last_order, as_timestamp(until, what="until"))
        dates = snapshot_dates(end, snapshots, horizon_days, gap_days)
    else:
        dates = sorted({as_timestamp(s, what="snapshot") for s in snapshots})
        if not dates:
            raise ConfigError("snapshots is empty; pass dates such as ['2024-01-01'] or a count.")
    _check_snapshots(dates, horizon_days, gap_days, last_order)
    return dates


def training_frame(
    store: TableSource,
    snapshots: int | Iterable[datetime | date | str],
    horizon_days: int,
    gap_days: int,
    *,
    label: str = "churn",
    category: str | None = None,
    groups: Iterable[str] | None = None,
    windows: FeatureWindows = DEFAULT_WINDOWS,
    progress: bool | ProgressCallback = False,
    until: datetime | date | str | None = None,
) -> TrainingSet:
    """Stack features and labels over several snapshot dates.

    Parameters
    ----------
    store : Store or Ibis backend
        The customer/loyalty store, or an Ibis connection holding its tables
        (as in :func:`customer_features`).
    snapshots : int or iterable of dates
        The ``as_of`` dates, or a count: that many midnights ``gap_days``
        apart, the latest as late as the data allows.
    horizon_days : int
        Label window length.
    gap_days : int
        Minimum spacing of consecutive snapshots (at least ``horizon_days``
        keeps their label windows from overlapping; less is logged as a warning).
    label : {'churn', 'purchase', 'tier_downgrade'}
        Which label; ``category`` narrows ``purchase`` to one product category.
    groups, windows, progress
        As in :func:`customer_features`.
    until : date, optional
        With a count of snapshots: the date their label windows must end by,
        when earlier than the data's end (see :func:`resolve_snapshots`).

    Returns
    -------
    TrainingSet
        ``frame`` indexed by (``as_of``, ``customer_id``) with features and a
        bool ``label``; ``prevalence`` per snapshot.
    """
    if category is not None:  # checked once, before any snapshot is built
        if label != "purchase":
            raise ConfigError(
                f"category narrows the 'purchase' label only; label={label!r} has none."
            )
        category = stored_category(store, category)
    make_labels = _label_function(label, category)
    dates = resolve_snapshots(store, snapshots, horizon_days, gap_days, until=until)
    erased = _erased(store)
    frames, rows, left_out = [], [], set[str]()
    for as_of in dates:
        labels = make_labels(store, as_of, horizon_days).iloc[:, 0].rename("label")
        feats = customer_features(store, as_of, groups=groups, windows=windows, progress=progress)
        frame = feats.join(labels, how="inner")
        found = is_erased(frame.index, erased)
        left_out.update(frame.index[found].astype("str"))
        frame = frame[~found]
        frames.append(pd.concat({pd.Timestamp(as_of): frame}, names=["as_of"]))
        positives = int(frame["label"].sum())
        rows.append(
            {
                "as_of": pd.Timestamp(as_of),
                "customers": len(frame),
                "positives": positives,
                "prevalence": positives / len(frame) if len(frame) else float("nan"),
                "label_end": pd.Timestamp(as_of + timedelta(days=horizon_days)),
            }
        )
        log.info(
            "Snapshot %s: %d customers, %s prevalence %.3f",
            as_of,
            len(frame),
            label,
            rows[-1]["prevalence"],
        )
    prevalence = pd.DataFrame(rows).set_index("as_of")
    built = TrainingSet(
        pd.concat(frames), prevalence, label, horizon_days, category, erased=len(left_out)
    )
    if built.erased:
        log.info("%s", built.erased_note)
    return built


def _erased(store: TableSource) -> pd.Index:
    """Ids erased on request, read where the features are read.

    An Ibis source without an ``erased_customer`` table (one registered by hand,
    not by :func:`crm_ml.spark.spark_tables`) cannot tell them apart: that is
    logged, and none are left out.
    """
    if isinstance(store, Store):
        with store.connect() as conn:
            return erased_ids(conn)
    with open_tables(store) as (con, _):
        if "erased_customer" not in con.list_tables():
            log.warning(
                "Customers erased on request cannot be told apart: the tables hold no "
                "erased_customer, so any in the snapshots are trained on. Register the tables "
                "with crm_ml.spark.spark_tables() from an export_tables() folder."
            )
            return pd.Index([], dtype="str")
        ids = con.table("erased_customer").select("customer_id").to_pandas()["customer_id"]
    return pd.Index(sorted(ids.astype("str")), dtype="str", name="customer_id")
