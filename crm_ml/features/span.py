"""The dates a store's data covers, and the ``as_of`` dates that make sense on it.

Features, scores, tags and segments at a date before the data starts come out
empty, and at a date long after the last order everyone looks lapsed: both
"work" and mean nothing. :func:`check_as_of` refuses such dates in one place;
:func:`default_as_of` is the natural date to look at a store: the first
midnight after its last order's day, when everything recorded is history.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import NamedTuple

import pandas as pd

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features.backend import TableSource, fetch, open_tables
from crm_ml.features.spec import as_timestamp

#: How long after the last recorded order an ``as_of`` still describes the customers: a date
#: beyond it is a typo, since everyone would look lapsed (and tag history only moves forward).
MAX_DAYS_AFTER_DATA = 90


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
    firsts = [_stamp(t) for t in (first_customer, span["lo"].iloc[0]) if not pd.isna(t)]
    last = span["hi"].iloc[0]
    return DataSpan(min(firsts) if firsts else None, None if pd.isna(last) else _stamp(last))


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
    return moment


def _stamp(value: datetime | pd.Timestamp) -> datetime:
    return pd.Timestamp(value).to_pydatetime()
