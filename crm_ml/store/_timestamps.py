"""Turning caller-supplied instants into the store's canonical form (naive UTC)."""

from __future__ import annotations

import numbers
from datetime import datetime

import numpy as np
import pandas as pd

from crm_ml.errors import CrmMlError, ValidationError


def refuse_number(value: object, *, name: str, error: type[CrmMlError] = ValidationError) -> None:
    """Raise ``error`` if ``value`` is a number or bool: pandas reads 20260101 as nanoseconds."""
    if isinstance(value, numbers.Number | np.bool_):
        kind = "a bool" if isinstance(value, bool | np.bool_) else "a number"
        raise error(
            f"{name}={value!r} is {kind}, not a date (pandas would read a number such as "
            f"20260101 as nanoseconds since 1970). Pass a date such as "
            f"{_spelled_date(value)!r} or a datetime."
        )


def _spelled_date(number: object) -> str:
    """Return the date a number such as ``20260101`` spells (``'2026-01-01'``), or that date."""
    try:
        return datetime.strptime(str(number), "%Y%m%d").strftime("%Y-%m-%d")
    except ValueError:
        return "2026-01-01"


def as_store_time(value: object, *, name: str) -> datetime:
    """Return ``value`` as a naive UTC :class:`datetime`, the form every table stores.

    A value with a time zone is converted to UTC; a naive value is taken to be UTC
    already (the store's convention), never the machine's local time.

    Parameters
    ----------
    value : datetime, pandas.Timestamp, numpy.datetime64 or str
        The instant, e.g. an ``as_of`` or ``at`` argument.
    name : str
        The argument's name, for the error message.

    Raises
    ------
    ValidationError
        If ``value`` is missing or not a timestamp.
    """
    refuse_number(value, name=name)
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{name}={value!r} is not a timestamp; pass e.g. datetime(2024, 7, 1) or '2024-07-01'."
        ) from exc
    if stamp is pd.NaT:
        raise ValidationError(f"{name} is missing; pass a timestamp such as '2024-07-01'.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()
