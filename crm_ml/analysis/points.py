"""Points liability and points about to expire, by FIFO consumption of earned lots.

The ledger's sum is what a member sees, but not what the retailer owes: some
earned points may have passed their ``expires_at`` before the expiry job
posted an ``expire`` row. To know *which* points remain, and when they
expire, postings before ``as_of`` are matched by this rule:

1. every positive posting (``earn``, or a positive ``adjust``) is a *lot*
   with its own ``expires_at`` (none: it never expires);
2. every negative posting (``redeem``, ``expire``, a negative ``adjust``)
   consumes lots first-in, first-out, in order of ``posted_at``, then the
   earliest ``expires_at`` (never-expiring last), then ``entry_id`` — the
   oldest points go first, which is also the first-to-expire when validity
   is a fixed term;
3. consumption beyond the lots on hand (an overdraft) is repaid by the next
   lots earned.

Rules 2 and 3 together mean the consumed points are exactly the oldest
``C`` points earned, where ``C`` is the total consumed, so the remaining
points of each lot follow from cumulative sums without replaying the ledger.

Points are valid until ``expires_at``, exclusive. At ``as_of``, a remaining
lot is *expired* if ``expires_at <= as_of`` (expired but not yet posted; a
lot expiring exactly at ``as_of`` is gone), *expiring within N days* if
``as_of < expires_at <= as_of + N days``, otherwise outstanding.
``points_outstanding = points_balance - points_expired_unposted`` is the
liability; valued at ``point_value`` (currency per point) when given.

The customer feature ``points_expiring_30d`` (:mod:`crm_ml.features.loyalty`)
applies the same rule, so the reminder lists and these reports agree.
"""

from __future__ import annotations

import logging

import pandas as pd

from crm_ml.analysis._common import (
    Instant,
    as_instant,
    check_tz,
    local_instant,
    require_positive,
    to_local,
)
from crm_ml.analysis._read import read_points_ledger
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)


def remaining_lots(ledger: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Points left in each lot after FIFO consumption (see the module notes).

    Parameters
    ----------
    ledger : pandas.DataFrame
        Columns ``entry_id``, ``customer_id``, ``posted_at``, ``points``, ``expires_at``.

    Returns
    -------
    lots : pandas.DataFrame
        Lots with points left: columns ``customer_id``, ``entry_id``,
        ``posted_at``, ``expires_at`` and ``remaining`` (int64).
    overdraft : pandas.Series
        Indexed by ``customer_id``: points consumed beyond every lot (int64, > 0 only).
    """
    # Same posted_at: the first-to-expire lot goes first (NaT, never expiring, last);
    # the features order lots the same way, without the entry_id text.
    ordered = ledger.sort_values(["customer_id", "posted_at", "expires_at", "entry_id"])
    lots = ordered[ordered["points"] > 0].copy()
    consumed = -ordered.loc[ordered["points"] < 0].groupby("customer_id")["points"].sum()
    earned_through = lots.groupby("customer_id")["points"].cumsum()
    earned_before = earned_through - lots["points"]
    used = lots["customer_id"].map(consumed).fillna(0).astype("int64")
    lots["remaining"] = (earned_through - used).clip(lower=0) - (earned_before - used).clip(lower=0)
    total_earned = lots.groupby("customer_id")["points"].sum().reindex(consumed.index, fill_value=0)
    overdraft = (consumed - total_earned).clip(lower=0)
    overdraft = overdraft[overdraft > 0].astype("int64")
    if not overdraft.empty:
        log.warning("%d customer(s) consumed more points than they earned", len(overdraft))
    columns = ["customer_id", "entry_id", "posted_at", "expires_at", "remaining"]
    return lots.loc[lots["remaining"] > 0, columns].reset_index(drop=True), overdraft


def points_liability(
    store: Store, as_of: Instant, *, point_value: float | None = None
) -> pd.DataFrame:
    """Outstanding points per customer just before ``as_of``.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        Only postings before it are read.
    point_value : float, optional
        Currency per point, to value the liability.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (customers with any posting, sorted); columns
        ``points_balance`` (the ledger's sum), ``points_expired_unposted``,
        ``points_outstanding`` (int64) and, with ``point_value``, ``liability``
        (float64). Sum a column for the programme's total.
    """
    as_of = as_instant(as_of)
    if point_value is not None:
        require_positive(point_value, name="point_value")
    ledger = read_points_ledger(store, as_of)
    lots, _ = remaining_lots(ledger)
    balance = ledger.groupby("customer_id")["points"].sum().rename("points_balance")
    expired = lots[lots["expires_at"] <= as_of].groupby("customer_id")["remaining"].sum()
    frame = balance.to_frame()
    frame["points_expired_unposted"] = expired.reindex(frame.index, fill_value=0)
    frame["points_outstanding"] = frame["points_balance"] - frame["points_expired_unposted"]
    frame = frame.astype("int64").sort_index()
    if point_value is not None:
        frame["liability"] = frame["points_outstanding"] * float(point_value)
    return frame


def _expiring_lots(store: Store, as_of: pd.Timestamp, within_days: int) -> pd.DataFrame:
    """Remaining lots with ``as_of < expires_at <= as_of + within_days`` (see the module notes)."""
    require_positive(within_days, name="within_days")
    lots, _ = remaining_lots(read_points_ledger(store, as_of))
    horizon = as_of + pd.Timedelta(days=within_days)
    return lots[(lots["expires_at"] > as_of) & (lots["expires_at"] <= horizon)]


def points_expiring(
    store: Store,
    as_of: Instant,
    *,
    within_days: int = 90,
    point_value: float | None = None,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Points that will expire within ``within_days`` after ``as_of``, by expiry month.

    A lot counts if ``as_of < expires_at <= as_of + within_days``: one expiring
    exactly at ``as_of`` has already expired (see :func:`points_liability`).

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        Only postings before it are read.
    within_days : int
        Horizon in days.
    point_value : float, optional
        Currency per point, to value the expiring points.
    tz : str
        IANA time zone whose calendar months group the expiries.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``expiry_month`` (monthly Period, every month of the horizon);
        columns ``customers``, ``points`` (int64) and, with ``point_value``, ``value``.
    """
    as_of = as_instant(as_of)
    check_tz(tz)
    lots = _expiring_lots(store, as_of, within_days)
    month = to_local(lots["expires_at"], tz).dt.to_period("M").rename("expiry_month")
    frame = lots.groupby(month).agg(
        customers=("customer_id", "nunique"), points=("remaining", "sum")
    )
    local_as_of = local_instant(as_of, tz)
    months = pd.period_range(
        pd.Period(local_as_of, "M"),
        pd.Period(local_as_of + pd.Timedelta(days=within_days), "M"),
        freq="M",
        name="expiry_month",
    )
    frame = frame.reindex(months, fill_value=0).astype("int64")
    if point_value is not None:
        frame["value"] = frame["points"] * float(point_value)
    return frame


def next_points_expiry(store: Store, as_of: Instant, *, tz: str = "UTC") -> pd.DataFrame:
    """Return the next points to expire after ``as_of``, however far off.

    A programme whose points all expire on one day a year has nothing in
    :func:`points_expiring`'s window for most of the year; this says when the
    next expiry comes and how many points and customers it holds, so a
    reminder can be planned.

    Returns
    -------
    pandas.DataFrame
        One row indexed by ``expiry_date`` (the local date in ``tz`` of the
        earliest ``expires_at`` after ``as_of``), columns ``customers`` and
        ``points`` (int64); no row when no remaining points expire.
    """
    as_of = as_instant(as_of)
    check_tz(tz)
    lots, _ = remaining_lots(read_points_ledger(store, as_of))
    lots = lots[(lots["expires_at"] > as_of) & (lots["remaining"] > 0)]
    first = lots[lots["expires_at"] == lots["expires_at"].min()]
    day = to_local(first["expires_at"], tz).dt.date.rename("expiry_date")
    frame = first.groupby(day).agg(
        customers=("customer_id", "nunique"), points=("remaining", "sum")
    )
    return frame.astype("int64")


def customers_with_expiring_points(
    store: Store, as_of: Instant, *, within_days: int = 30
) -> pd.DataFrame:
    """List customers with points expiring within ``within_days``, for reminders.

    The same points as the feature ``points_expiring_30d`` (for ``within_days=30``):
    unspent lots with ``as_of < expires_at <= as_of + within_days``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted); columns ``points_expiring`` (int64)
        and ``next_expiry_at`` (naive UTC, the earliest expiry in the horizon).
    """
    as_of = as_instant(as_of)
    lots = _expiring_lots(store, as_of, within_days)
    frame = lots.groupby("customer_id").agg(
        points_expiring=("remaining", "sum"), next_expiry_at=("expires_at", "min")
    )
    return frame.astype({"points_expiring": "int64"}).sort_index()
