"""The explorer's controls: threshold rows, threshold parsing and the options of its pickers.

This module holds the pieces of :class:`~crm_ml.widgets.SegmentExplorer` that
turn choices into rule text: the comparison operators and score sliders on
offer, :class:`ThresholdRow` (one ``feature <op> value`` condition), the
parser for thresholds given from Python, the tier, channel and feature
options read from the store and the features frame, and the titled sections
the controls are laid out in.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import pandas as pd
from sqlalchemy import select

from crm_ml.errors import ValidationError
from crm_ml.rules import Vocabulary
from crm_ml.store.connection import Store
from crm_ml.store.schema import Tier

#: Comparisons offered for feature thresholds.
OPERATORS = (">", ">=", "<", "<=", "==", "!=")
#: Score fields with a range slider: rule name -> slider label.
SCORE_SLIDERS = {"p_churn": "Churn probability", "p_purchase": "Purchase probability"}
_FULL = (0.0, 1.0)


def _number(value: float) -> str:
    """Write a number as a rule literal: ``60`` rather than ``60.0``."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


class ThresholdRow:
    """One ``feature <op> value`` condition: a dropdown, an operator and a number."""

    def __init__(self, features: Sequence[str], feature: str, op: str, value: float) -> None:
        self.feature = w.Dropdown(options=list(features), value=feature, description="Feature")
        self.op = w.Dropdown(options=list(OPERATORS), value=op, layout=w.Layout(width="70px"))
        self.value = w.FloatText(value=float(value), layout=w.Layout(width="110px"))
        self.remove = w.Button(description="✕", layout=w.Layout(width="40px"))
        self.box = w.HBox([self.feature, self.op, self.value, self.remove])

    def clause(self) -> str:
        """Return the condition as rule text."""
        return f"{self.feature.value} {self.op.value} {_number(self.value.value)}"


def _parse_threshold(item: str | Sequence[Any]) -> tuple[str, str, float]:
    """Accept ``("recency_days", ">", 90)`` or the text ``"recency_days > 90"``."""
    parts = item.split() if isinstance(item, str) else list(item)
    if len(parts) != 3 or parts[1] not in OPERATORS:
        raise ValidationError(
            f"A threshold is (feature, operator, number), e.g. ('recency_days', '>', 90) or "
            f"'recency_days > 90', with an operator among {' '.join(OPERATORS)}; got {item!r}."
        )
    try:
        return str(parts[0]), str(parts[1]), float(parts[2])
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"Threshold {item!r}: {parts[2]!r} is not a number.") from exc


def score_sliders() -> dict[str, w.FloatRangeSlider]:
    """Return one full-range slider per score in :data:`SCORE_SLIDERS`, keyed by rule name."""
    return {
        name: w.FloatRangeSlider(
            value=_FULL, min=0.0, max=1.0, step=0.05, description=text,
            continuous_update=False, style={"description_width": "initial"},
        )
        for name, text in SCORE_SLIDERS.items()
    }  # fmt: skip


def tier_options(store: Store, features: pd.DataFrame) -> list[tuple[str, int]]:
    """Return ``(label, level)`` for each tier level in ``features``, named from the store."""
    if "tier_level" not in features:
        return []
    with store.connect() as conn:
        names = dict(conn.execute(select(Tier.level, Tier.name)).all())
    levels = sorted(int(v) for v in features["tier_level"].dropna().unique())
    return [(f"{names.get(v, '(none)' if v == 0 else v)} (level {v})", v) for v in levels]


def channel_options(features: pd.DataFrame) -> list[str]:
    """Return the acquisition channels present in ``features``, sorted."""
    if "acquisition_channel" not in features:
        return []
    return sorted(str(v) for v in features["acquisition_channel"].dropna().unique())


def numeric_features(vocabulary: Vocabulary, features: pd.DataFrame) -> list[str]:
    """Return the numeric fields of ``vocabulary`` that are columns of ``features``."""
    return [
        str(c)
        for c, kind in vocabulary.fields.items()
        if kind == "number" and c in features.columns
    ]


def section(title: str, *children: w.Widget) -> w.VBox:
    """Stack ``children`` under a bold ``title``."""
    return w.VBox([w.HTML(f"<b>{html.escape(title)}</b>"), *children])
