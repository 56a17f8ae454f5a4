"""The dates a store's data covers, and the ``as_of`` dates that make sense on it.

Features, scores, tags and segments at a date before the data starts come out
empty, and at a date long after the last order everyone looks lapsed: both
"work" and mean nothing. :func:`check_as_of` refuses such dates in one place;
:func:`default_as_of` is the natural date to look at a store: the first
midnight after its last order's day, when everything recorded is history.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import NamedTuple

import pandas as pd

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features.backend import TableSource, fetch, open_tables
from crm_ml.features.spec import as_timestamp

log = logging.getLogger(__name__)

#: How long after the last recorded order an ``as_of`` still describes the customers: a date
#: beyond it is a typo, since everyone would look lapsed (and tag history only moves forward).
MAX_DAYS_AFTER_DATA = 90
#: A date more than this many days after the last order is warned about: the day's
#: orders may not have been loaded, and every customer would look that much more lapsed.
STALE_AFTER_DAYS = 7
#: (date, last order) pairs already warned about, so one command warns once.
_warned: set[tuple[datetime, datetime]] = set()


class DataSpan(NamedTuple):
    """First record (customer created or order placed) and last order, naive UTC; None if absent."""

    first: datetime | None
    last_order: datetime | None


def data_span(source: TableSource) -> DataSpan:
    """Return when the store's data starts and when its last order was placed."""
    with open_tables(source) as (con, _dialect):
        customers, orders = con.table("customer"), con.table("orders")
        first_customer = fetch(customers.aggregate(t=customers.created_at.min()))["t"].iloc[0]
        span = fetch(orders.aggregate(lo=orders.ordered_at.min(), hi=orders.ordered_at.max()))
    found = (
        (first_customer, "customer", "created_at", "MIN"),
        (span["lo"].iloc[0], "orders", "ordered_at", "MIN"),
    )
    firsts = [_stamp(t, table, column, end) for t, table, column, end in found if not pd.isna(t)]
    last = span["hi"].iloc[0]
    last_order = None if pd.isna(last) else _stamp(last, "orders", "ordered_at", "MAX")
    return DataSpan(min(firsts) if firsts else None, last_order)


def next_midnight(moment: datetime) -> datetime:
    """Return the first midnight after ``moment`` (``moment`` itself if it is one)."""
    day = datetime.combine(moment.date(), datetime.min.time())
    return day if day == moment else day + timedelta(days=1)


def end_of_data(last_order: datetime) -> datetime:
    """Return where the data ends: the midnight that closes the day of the last order.

    The data is taken to cover that day to its end: day-granular imports (CDNOW)
    stamp every order at midnight, and a store's last order is rarely at the very
    end of its extract. Features at this date see every order; a label window
    may run up to it, and no further (:func:`crm_ml.features.labels.check_label_window`).
    """
    return datetime.combine(last_order.date(), datetime.min.time()) + timedelta(days=1)


def default_as_of(source: TableSource) -> datetime:
    """Return the first midnight after the last order's day, when every recorded order is history.

    An order at exactly midnight still counts as history: features see rows
    strictly before ``as_of``, so the date is the midnight after it.

    Raises
    ------
    NotFoundError
        If the store holds no orders.
    """
    last = data_span(source).last_order
    if last is None:
        raise NotFoundError(
            "The store holds no orders, so there is no date to look at it from. "
            "Load them with `crm-ml import orders FILE`."
        )
    return end_of_data(last)


def check_as_of(
    source: TableSource,
    as_of: datetime | date | str | pd.Timestamp,
    *,
    what: str = "as_of",
    span: DataSpan | None = None,
) -> datetime:
    """Return ``as_of`` as a naive UTC datetime if the store's data covers it.

    ``what`` names the date in messages (``--as-of`` for the CLI). Pass
    ``span`` when the caller already has it, to save a query.

    Raises
    ------
    ValidationError
        If the store has no customers or orders, ``as_of`` is before its data
        starts, or more than :data:`MAX_DAYS_AFTER_DATA` days after its last order.
    """
    moment = as_timestamp(as_of, what=what)
    first, last = span if span is not None else data_span(source)
    if first is None or last is None:
        raise ValidationError(
            f"{what} {moment:%Y-%m-%d} cannot be checked: the store has "
            f"{'no customers' if first is None else 'no orders'}. "
            "Load them with `crm-ml import`."
        )
    if moment < first:
        raise ValidationError(
            f"{what} {moment:%Y-%m-%d} is before the store's data starts: its first customer "
            f"or order is from {first:%Y-%m-%d %H:%M} UTC. "
            f"Use a date from {next_midnight(first):%Y-%m-%d} on."
        )
    latest = last + timedelta(days=MAX_DAYS_AFTER_DATA)
    if moment > latest:
        raise ValidationError(
            f"{what} {moment:%Y-%m-%d} is {(moment - last).days} days after the last recorded "
            f"order ({last:%Y-%m-%d %H:%M} UTC), so every customer would look lapsed. Expected "
            f"a date by {latest:%Y-%m-%d} ({MAX_DAYS_AFTER_DATA} days after it), e.g. "
            f"{end_of_data(last):%Y-%m-%d}; if there are newer orders, load them first "
            "(`crm-ml import orders FILE`)."
        )
    if moment > last + timedelta(days=STALE_AFTER_DAYS) and (moment, last) not in _warned:
        _warned.add((moment, last))
        days = (moment - last).days
        log.warning(
            "%s %s is %d days after the last recorded order (%s UTC): if orders since then "
            "have not been loaded, every customer looks %d days more lapsed than they are, and "
            "scores, tags and lists will say so. Load newer orders first (`crm-ml import "
            "orders FILE`), or use a date nearer the data, e.g. %s.",
            what, f"{moment:%Y-%m-%d}", days, f"{last:%Y-%m-%d %H:%M}", days,
            f"{end_of_data(last):%Y-%m-%d}",
        )  # fmt: skip
    return moment


#: How a row holding an unreadable date is corrected, by table.
_CORRECTION = {
    "customer": "import that customer again with its real created_at, which updates it",
    "orders": "correct it in the database: orders are append-only, so an import cannot",
}


def _stamp(value: datetime | pd.Timestamp, table: str, column: str, end: str) -> datetime:
    """Return ``value``, the ``end`` (MIN or MAX) of ``table.column``, as a Python datetime.

    Raises
    ------
    ValidationError
        If it is outside the years 1 to 9999, which Python cannot hold: year 0 is what an
        earlier crm_ml import made of full-width digits (２０２５/１/１ read as 0001-01-01,
        then shifted to UTC); imports now refuse years before 1800.
    """
    try:
        return pd.Timestamp(value).to_pydatetime()
    except (ValueError, OverflowError) as exc:
        raise ValidationError(
            f"The store's {table}.{column} holds {value}, a date Python cannot read (years 1 "
            f"to 9999 only), so nothing can be computed on this store. Find the row with "
            f"`SELECT * FROM {table} WHERE {column} = (SELECT {end}({column}) FROM {table})` "
            f"and {_CORRECTION[table]} (an earlier import read full-width digits such as "
            "２０２５ as year 0)."
        ) from exc
