"""Turning caller-supplied instants into the store's canonical form (naive UTC)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from crm_ml.errors import ValidationError


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
