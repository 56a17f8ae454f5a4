"""What a rule may name: features, scores, tags, consent channels and purposes.

A rule is checked against a :class:`Vocabulary` when it is saved, so that an
unknown field or a type mismatch is reported then, with the nearest known
name, rather than when a nightly run evaluates it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

import pandas as pd

from crm_ml.features.spec import (  # CATEGORY_LABELS: re-exported for crm_ml.rules
    CATEGORY_LABELS as CATEGORY_LABELS,
)
from crm_ml.features.spec import MAJOR_CATEGORIES
from crm_ml.store.schema import CONSENT_CHANNELS, CONSENT_PURPOSES

#: The value types a rule knows.
ValueType = Literal["number", "text", "bool"]

#: Product categories of the ``affinity_<category>`` and ``days_since_<category>`` features,
#: and their Chinese display names.
CATEGORIES = MAJOR_CATEGORIES

_NUMBER_FEATURES = (
    "recency_days",
    "orders_90d",
    "orders_365d",
    "orders_lifetime",
    "revenue_90d",
    "revenue_365d",
    "revenue_lifetime",
    "avg_order_value",
    "tenure_days",
    "days_since_first_order",
    "interpurchase_mean_days",
    "discount_share",
    "top_category_share",
    "points_balance",
    "points_expiring_30d",
    "tier_level",
    "last_tier_change_direction",
    "coupon_redemption_rate",
    "city_tier",
    *(f"affinity_{c}" for c in CATEGORIES),
    *(f"days_since_{c}" for c in CATEGORIES),
)
_TEXT_FEATURES = ("age_band", "gender", "acquisition_channel")
_BOOL_FEATURES = ("is_member", "has_owner")

#: The customer features a rule may use, with their types (the features catalog's names).
FEATURE_TYPES: Mapping[str, ValueType] = MappingProxyType(
    {
        **dict.fromkeys(_NUMBER_FEATURES, "number"),
        **dict.fromkeys(_TEXT_FEATURES, "text"),
        **dict.fromkeys(_BOOL_FEATURES, "bool"),
    }
)

#: Score fields: rule name -> (model name in the ``score`` table, column, type).
SCORE_FIELDS: Mapping[str, tuple[str, str, ValueType]] = MappingProxyType(
    {
        "p_churn": ("crm-churn", "probability", "number"),
        "churn_band": ("crm-churn", "band", "text"),
        "p_purchase": ("crm-propensity", "probability", "number"),
        "purchase_band": ("crm-propensity", "band", "text"),
    }
)

#: Score fields that hold a probability, 0–1 (the score table's ``probability``).
PROBABILITY_FIELDS = frozenset(
    name for name, (_, column, _) in SCORE_FIELDS.items() if column == "probability"
)


def probability_hint(value: float) -> str:
    """Say that probabilities run 0–1 and, for what reads as a percentage, the value meant.

    For a ``value`` above 1 and at most 100 (``60``), the hint suggests ``value / 100``
    (``0.6``): a threshold typed as a percentage matches no one, or everyone.
    """
    if 1 < value <= 100:
        return f"probabilities run 0–1; for {value:g} % write {value / 100:g}"
    return "probabilities run 0–1"


def dtype_value_type(dtype: Any) -> ValueType | None:
    """Map a pandas dtype to a rule type; ``None`` for types rules cannot compare."""
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if (
        pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
    ):
        return "text"
    return None


def _catalog_rows(catalog: pd.DataFrame) -> pd.DataFrame:
    """Return the catalog with ``name`` as a column (it may be the index)."""
    if "name" in catalog.columns:
        return catalog
    return catalog.rename_axis("name").reset_index()


def _catalog_types(catalog: pd.DataFrame) -> dict[str, ValueType]:
    """Read the ``name`` and ``dtype`` of a features catalog into rule types."""
    types: dict[str, ValueType] = {}
    rows = _catalog_rows(catalog)
    for name, dtype in zip(rows["name"], rows["dtype"], strict=True):
        text = str(dtype).lower()
        if text in ("bool", "boolean"):
            types[str(name)] = "bool"
        elif text.startswith(("int", "float", "double", "uint", "decimal")):
            types[str(name)] = "number"
        elif text in ("str", "string", "category", "object", "text"):
            types[str(name)] = "text"
    return types


def _catalog_choices(catalog: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Read the fixed categories of text features (``categories``, comma-separated)."""
    rows = _catalog_rows(catalog)
    if "categories" not in rows.columns:
        return {}
    return {
        str(name): tuple(c.strip() for c in str(cats).split(",") if c.strip())
        for name, cats in zip(rows["name"], rows["categories"], strict=True)
        if isinstance(cats, str) and cats.strip()
    }


@dataclass(frozen=True)
class Vocabulary:
    """The names a rule may use.

    Attributes
    ----------
    fields : Mapping[str, ValueType]
        Features and scores, each with its type.
    tags : frozenset of str
        Names usable in ``tag("...")``.
    channels, purposes : tuple of str
        Values usable in ``consent("channel", "purpose")``.
    choices : Mapping[str, tuple of str]
        For text fields with fixed values, the values a rule may compare them with.
    """

    fields: Mapping[str, ValueType] = field(
        default_factory=lambda: {**FEATURE_TYPES, **{k: v[2] for k, v in SCORE_FIELDS.items()}}
    )
    tags: frozenset[str] = frozenset()
    channels: tuple[str, ...] = CONSENT_CHANNELS
    purposes: tuple[str, ...] = CONSENT_PURPOSES
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def with_tags(self, names: Iterable[str]) -> Vocabulary:
        """Return a copy that also knows the tags ``names``."""
        return replace(self, tags=self.tags | frozenset(names))

    def with_frame(self, features: pd.DataFrame) -> Vocabulary:
        """Return a copy that also knows every comparable column of ``features``."""
        extra = {
            str(col): kind
            for col, dtype in features.dtypes.items()
            if (kind := dtype_value_type(dtype)) is not None
        }
        return replace(self, fields={**self.fields, **extra})

    def with_catalog(self, catalog: pd.DataFrame) -> Vocabulary:
        """Return a copy that knows a features catalog (``name``, ``dtype``, ``categories``)."""
        fields = {**self.fields, **_catalog_types(catalog)}
        return replace(self, fields=fields, choices={**self.choices, **_catalog_choices(catalog)})


def nearest(name: str, candidates: Iterable[str]) -> str:
    """Return a ``Did you mean ...?`` hint for ``name`` among ``candidates`` (or ``""``)."""
    matches = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.5)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
