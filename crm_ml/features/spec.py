"""What a feature is: its name, group, declared type, unit and meaning.

Every group module (``value``, ``product``, ...) declares its features with
:class:`Feature` next to the Ibis expression that computes them; the
declarations drive the output types, the fill value of customers with no
history, the catalog and the generated docs page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from crm_ml.errors import ConfigError
from crm_ml.store import schema as store_schema
from crm_ml.store._timestamps import refuse_number

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from crm_ml.features.backend import Snapshot

DType = Literal["int64", "float64", "bool", "category"]
Fill = float | int | bool | str | None

#: Categories of the product group's ``affinity_<category>`` and ``days_since_<category>``:
#: the store's (the importer maps Chinese category names to them).
MAJOR_CATEGORIES = store_schema.MAJOR_CATEGORIES

#: Chinese display names of those categories, for labels and reasons.
CATEGORY_LABELS = {
    "maternity_baby": "母婴",
    "beauty": "美妆",
    "food": "食品",
    "apparel": "服饰",
    "electronics": "数码家电",
    "home": "家居",
}

#: Words shown for the profile features' stored codes: (English, Chinese) per value.
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "acquisition_channel": {
        "store": ("a store", "门店"),
        "app": ("the app", "App"),
        "mini_program": ("the mini program", "小程序"),
        "web": ("the website", "官网"),
        "referral": ("a referral", "老客推荐"),
        "other": ("another channel", "其他渠道"),
        "unknown": ("an unknown channel", "未知"),
    },
    "gender": {
        "female": ("female", "女"),
        "male": ("male", "男"),
        "unknown": ("unknown", "未知"),
    },
    "age_band": {
        "under_25": ("under 25", "25岁以下"),
        "25_34": ("25-34", "25-34岁"),
        "35_44": ("35-44", "35-44岁"),
        "45_54": ("45-54", "45-54岁"),
        "55_plus": ("55 and over", "55岁及以上"),
        "unknown": ("unknown", "未知"),
    },
}

#: Channels of the profile group's ``consent_<channel>_marketing`` flags.
CONSENT_FEATURE_CHANNELS = ("sms", "email", "wechat")


@dataclass(frozen=True)
class Feature:
    """One output column.

    Attributes
    ----------
    name : str
        Column name, ending in its unit (``_days``, ``_30d``, ``_share``...).
    group : str
        The group that computes it (``value``, ``product``, ...).
    dtype : {'int64', 'float64', 'bool', 'category'}
        Declared pandas type; every engine's result is cast to it.
    unit : str
        ``days``, ``count``, ``currency``, ``points``, ``ratio``, ``flag``,
        ``level``, ``direction`` or ``label``.
    description : str
        What it measures, in one or two sentences.
    fill : object
        Value of a customer with no rows for this feature (``0`` for counts,
        ``NaN`` when the feature is undefined, e.g. a rate with no events).
    categories : tuple of str
        Fixed categories of a ``category`` feature, in order.
    """

    name: str
    group: str
    dtype: DType
    unit: str
    description: str
    fill: Fill = None
    categories: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if (self.dtype == "category") != bool(self.categories):
            raise ConfigError(
                f"Feature {self.name!r}: a 'category' feature needs fixed categories, and only "
                f"it may have them (dtype {self.dtype!r}, categories {self.categories!r})."
            )


@dataclass(frozen=True)
class FeatureWindows:
    """Look-back windows, in days, that name and shape the window features.

    Attributes
    ----------
    value_days : tuple of int
        Windows of ``orders_<n>d`` and ``revenue_<n>d`` (a lifetime column is always added).
    event_days : tuple of int
        Windows of ``events_<type>_<n>d``.
    recent_days : int
        The "recent" window: revenue trend, points earned/redeemed, coupons,
        stored value spent, complaints, feedback, campaign contacts.
    short_days : int
        The "short" window: cart abandonment, searches, points expiring.
    cart_hours : int
        A cart add counts as converted when an order follows within this many hours.
    """

    value_days: tuple[int, ...] = (30, 90, 180, 365)
    event_days: tuple[int, ...] = (30, 90, 365)
    recent_days: int = 90
    short_days: int = 30
    cart_hours: int = 24

    def __post_init__(self) -> None:
        days = (*self.value_days, *self.event_days, self.recent_days, self.short_days)
        if not days or min(days) <= 0 or self.cart_hours <= 0:
            raise ConfigError(
                "Feature windows must be positive whole days (and cart_hours positive); "
                f"got {self}."
            )


@dataclass(frozen=True)
class FeatureGroup:
    """A named set of features and the Ibis expressions that compute them.

    Attributes
    ----------
    name : str
        ``value``, ``product``, ``behaviour``, ``loyalty``, ``campaigns`` or ``profile``.
    description : str
        One line for the catalog page.
    features : callable
        ``features(windows) -> list[Feature]``: the declarations, in output order.
    expressions : callable
        ``expressions(snapshot) -> list[ibis Table]``: each keyed by ``customer_id``
        (one row per customer with history) holding some of the group's features.
    """

    name: str
    description: str
    features: Callable[[FeatureWindows], list[Feature]]
    expressions: Callable[[Snapshot], list[ir.Table]]


def when_text(moment: datetime) -> str:
    """``2026-01-01``, or ``2026-01-01 06:30`` when the time is not midnight: a date in messages."""
    return f"{moment:%Y-%m-%d %H:%M}".removesuffix(" 00:00")


def _iso(text: str, what: str) -> datetime:
    """Read a date or time written in ISO form (``2024-07-01``, ``2024-07-01T08:00:00+08:00``)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(
            f"{what}={text!r} is not a date in ISO form; write it as YYYY-MM-DD, e.g. "
            "'2024-07-01' (a time may follow: '2024-07-01T08:00'). A date such as 01/02/2026 "
            "is refused: it reads as 2 January or 1 February, depending on who wrote it."
        ) from exc


def as_timestamp(
    value: datetime | date | str | pd.Timestamp | np.datetime64, *, what: str = "as_of"
) -> datetime:
    """Return ``value`` as a naive UTC :class:`datetime`, the store's form of time.

    The one reader of caller-supplied dates for features, labels, scores, tags
    and segments (:func:`crm_ml.rules.as_timestamp` delegates here). A date or a
    date string means midnight UTC; an aware timestamp is converted to UTC.

    Raises
    ------
    ConfigError
        If ``value`` is missing, a number (pandas would read ``20260101`` as
        nanoseconds since 1970), text not in ISO form (``01/02/2026`` reads as
        2 January or 1 February, depending on who wrote it), or not a date or time.
    """
    refuse_number(value, name=what, error=ConfigError)
    if isinstance(value, str) and value.strip():
        value = _iso(value, what)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{what}={value!r} is not a date or time; pass e.g. '2024-07-01' or a datetime."
        ) from exc
    if pd.isna(stamp):
        raise ConfigError(f"{what} is missing; pass a date such as '2024-07-01'.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(UTC).tz_localize(None)
    return stamp.to_pydatetime()
