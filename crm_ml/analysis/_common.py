"""Helpers shared by the analyses: instants, periods, local time, input checks.

Every analysis describes the state *just before* ``as_of``: it reads rows whose
event time is ``< as_of``, so a report for a date never sees that date's rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store._timestamps import as_store_time

#: What callers may pass as an instant: a datetime, a date, a pandas Timestamp or an ISO string.
Instant = datetime | date | pd.Timestamp | str

#: A customer in none of the segments a risk table is broken down by.
NO_SEGMENT = "(none)"
#: A customer without an account manager.
NO_OWNER = "(unassigned)"

_OFFSET_END = re.compile(r"^(\d*)(ME|QE|YE|BME|BQE|BYE)(-[A-Z]{3})?$")


def as_instant(value: Instant, *, name: str = "as_of") -> pd.Timestamp:
    """Return ``value`` as a naive UTC :class:`pandas.Timestamp`, the store's form.

    A value with a time zone is converted to UTC; a naive value is taken as UTC.

    Raises
    ------
    ValidationError
        If ``value`` is missing or not a timestamp.
    """
    return pd.Timestamp(as_store_time(value, name=name)).as_unit("us")


def bind(stamp: pd.Timestamp) -> datetime:
    """Return a timestamp as a Python datetime to bind into a query."""
    return stamp.to_pydatetime()


def check_tz(tz: str) -> str:
    """Return ``tz`` if it names an IANA time zone.

    Raises
    ------
    ConfigError
        If it does not.
    """
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"Unknown time zone {tz!r}; expected an IANA name such as 'Asia/Shanghai' or 'UTC'."
        ) from exc
    return tz


def to_local(values: pd.Series, tz: str) -> pd.Series:
    """Convert naive-UTC timestamps to naive local wall-clock time in ``tz``.

    Periods (months, quarters) are the business's calendar periods, so an order
    placed at 23:30 UTC on 31 January belongs to February in Shanghai.
    """
    if tz == "UTC":
        return values
    return values.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)


def local_instant(stamp: pd.Timestamp, tz: str) -> pd.Timestamp:
    """Convert one naive-UTC timestamp to naive local time in ``tz``."""
    if tz == "UTC":
        return stamp
    return stamp.tz_localize("UTC").tz_convert(tz).tz_localize(None)


#: Periods by their plain names, as a report parameter may give them (``-p period month``).
PERIOD_WORDS = {"week": "W-SUN", "month": "ME", "quarter": "QE", "year": "YE"}


def period_freq(freq: str) -> str:
    """Translate an offset alias (``"ME"``, ``"QE"``, ``"YE"``, ``"W-SUN"``) to a period alias.

    pandas 3 names month *ends* ``"ME"`` for date ranges but months ``"M"`` for
    periods; callers may use either spelling, or a plain name from
    :data:`PERIOD_WORDS` (``"month"``, weeks ending on Sunday).

    Raises
    ------
    ConfigError
        If ``freq`` is not a calendar frequency pandas understands.
    """
    freq = PERIOD_WORDS.get(str(freq).strip().lower(), freq)
    match = _OFFSET_END.match(freq)
    alias = freq
    if match:
        mult, unit, suffix = match.groups()
        alias = f"{mult}{unit.removeprefix('B')[0]}{suffix or ''}"
    try:
        pd.Period("2024-01-01", alias)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"freq={freq!r} is not a calendar period; use 'week', 'month', 'quarter' or 'year', "
            "or a pandas alias such as 'ME' (month end) or 'W-SAT' (weeks ending on Saturday)."
        ) from exc
    return alias


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise if ``frame`` lacks any of ``columns``.

    Raises
    ------
    ValidationError
        Naming the missing and the present columns.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{what} is missing column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, frame.columns)) or 'no columns'}."
        )


def require_positive(value: float, *, name: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a positive number."""
    if not value > 0:
        raise ConfigError(f"{name} must be positive; got {value!r}.")
