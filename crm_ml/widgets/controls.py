"""The explorer's controls: threshold rows, threshold parsing and the options of its pickers.

This module holds the pieces of :class:`~crm_ml.widgets.SegmentExplorer` that
turn choices into rule text: the comparison operators and score sliders on
offer, :class:`ThresholdRow` (one ``feature <op> value`` condition), the
parser and checks of values given from Python (:func:`check_selection`:
every value is checked before any control is set), the tier, channel and feature
options read from the store and the features frame, and the titled sections
the controls are laid out in.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import ipywidgets as w
import pandas as pd
from sqlalchemy import select

from crm_ml.errors import ValidationError
from crm_ml.features.spec import VALUE_LABELS
from crm_ml.rules import Vocabulary
from crm_ml.rules.vocabulary import nearest
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


#: A threshold written as text, with or without spaces: ``recency_days>90``.
_THRESHOLD_TEXT = re.compile(r"\s*(\S+?)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")


def _parse_threshold(item: str | Sequence[Any]) -> tuple[str, str, float]:
    """Accept ``("recency_days", ">", 90)`` or the text ``"recency_days > 90"``."""
    if isinstance(item, str):
        match = _THRESHOLD_TEXT.fullmatch(item)
        parts = list(match.groups()) if match else item.split()
    else:
        parts = list(item)
    if len(parts) != 3 or parts[1] not in OPERATORS:
        raise ValidationError(
            f"A threshold is (feature, operator, number), e.g. ('recency_days', '>', 90) or "
            f"'recency_days > 90', with an operator among {' '.join(OPERATORS)}; got {item!r}."
        )
    try:
        return str(parts[0]), str(parts[1]), float(parts[2])
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"Threshold {item!r}: {parts[2]!r} is not a number.") from exc


def _listed(values: Sequence[Any], limit: int = 20) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return (shown + (" …" if len(values) > limit else "")) or "none"


def check_choices(values: Iterable[Any], valid: Sequence[str], what: str) -> tuple[str, ...]:
    """Return ``values`` as a tuple if each is one of ``valid`` (a single string is one value).

    Raises
    ------
    ValidationError
        For the first value that is not, with the nearest valid ones and the list.
    """
    chosen = (values,) if isinstance(values, str) else tuple(values)
    for value in chosen:
        if value not in valid:
            raise ValidationError(
                f"Unknown {what} {value!r}.{nearest(str(value), valid)} "
                f"Choose among: {_listed(valid, limit=40)}."
            )
    return chosen


def check_range(value: Any, name: str) -> tuple[float, float]:
    """Return ``(low, high)`` as floats if ``0 <= low <= high <= 1``.

    Raises
    ------
    ValidationError
        For anything else, saying what was expected.
    """
    expected = f"{name} is a range (low, high) with 0 ≤ low ≤ high ≤ 1, e.g. (0.6, 1.0)"
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{expected}; got {value!r}.") from exc
    if low > high:
        raise ValidationError(f"{expected}; got {value!r}, whose lower end is above its upper.")
    if not 0 <= low <= high <= 1:
        raise ValidationError(f"{expected}; got {value!r}.")
    return low, high


def check_tiers(values: Iterable[Any], options: Sequence[tuple[str, int]]) -> tuple[int, ...]:
    """Return tier levels as ints if each is one of ``options`` (``(label, level)`` pairs).

    A tier is given by its level (``2``) or by a name its option shows
    (``"gold"``, ``"金卡会员"``).

    Raises
    ------
    ValidationError
        For the first value that is not a tier on offer; a name close to a
        tier's gets that tier suggested.
    """
    names = {int(level): label.split(" (level ")[0] for label, level in options}
    levels = {part: level for level, name in names.items() for part in name.split(" / ")}
    chosen = []
    for value in (values,) if isinstance(values, str) else values:
        level = _level(value)
        level = levels.get(str(value).strip()) if level is None else level
        if level not in names:
            raise ValidationError(
                f"Unknown tier {value!r}: choose a tier by its level or its name."
                f"{_tier_hint(value, levels, names)} "
                f"Choose among: {_listed([f'{v} = {name}' for v, name in names.items()])}."
            )
        chosen.append(level)
    return tuple(chosen)


def _level(value: Any) -> int | None:
    """Return a tier level given as an int or digits, else None."""
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _tier_hint(value: Any, levels: dict[str, int], names: dict[int, str]) -> str:
    """Suggest the tier whose name is closest to ``value``."""
    lowered = {name.lower(): level for name, level in levels.items()}
    close = difflib.get_close_matches(str(value).lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean {lowered[close[0]]} ({names[lowered[close[0]]]})?" if close else ""


def check_feature(name: str, names: Sequence[str]) -> str:
    """Return ``name`` if it is one of the numeric features ``names``.

    Raises
    ------
    ValidationError
        Otherwise, with the nearest names and the list.
    """
    if name not in names:
        raise ValidationError(
            f"{name!r} is not a numeric feature of the frame.{nearest(name, names)} "
            f"Choose one of {_listed(names)}."
        )
    return name


class Offered(NamedTuple):
    """What the explorer's controls offer: tag names, tier options, channels, numeric features."""

    tags: list[str]
    tiers: list[tuple[str, int]]
    channels: list[tuple[str, str]]
    features: list[str]


def check_selection(offered: Offered, values: dict[str, Any]) -> dict[str, Any]:
    """Return the values of :meth:`SegmentExplorer.apply`, each checked against ``offered``.

    ``values`` has the keys ``tags, exclude_tags, p_churn, p_purchase,
    thresholds, tiers, channels, consented_only``; the result has the same
    keys, with thresholds parsed to ``(feature, operator, number)``.

    Raises
    ------
    ValidationError
        For the first value that is not on offer or not well formed.
    """
    thresholds = [_parse_threshold(item) for item in values["thresholds"]]
    for feature, _, _ in thresholds:
        check_feature(feature, offered.features)
    consented_only = values["consented_only"]
    if not isinstance(consented_only, bool):
        raise ValidationError(f"consented_only is True or False; got {consented_only!r}.")
    return {
        "tags": check_choices(values["tags"], offered.tags, "tag"),
        "exclude_tags": check_choices(values["exclude_tags"], offered.tags, "tag"),
        "p_churn": check_range(values["p_churn"], "p_churn"),
        "p_purchase": check_range(values["p_purchase"], "p_purchase"),
        "thresholds": thresholds,
        "tiers": check_tiers(values["tiers"], offered.tiers),
        "channels": check_channels(values["channels"], offered.channels),
        "consented_only": consented_only,
    }


def score_sliders() -> dict[str, w.FloatRangeSlider]:
    """Return one full-range slider per score in :data:`SCORE_SLIDERS`, keyed by rule name."""
    return {
        name: w.FloatRangeSlider(
            value=_FULL, min=0.0, max=1.0, step=0.05, description=text,
            continuous_update=False, style={"description_width": "initial"},
        )
        for name, text in SCORE_SLIDERS.items()
    }  # fmt: skip


#: The tier "level" that selects customers without a tier (``tier_level`` is missing).
NO_TIER = -1


def tier_options(store: Store, features: pd.DataFrame, lang: str = "en") -> list[tuple[str, int]]:
    """Return ``(label, level)`` for each tier level in ``features``, named from the store.

    In Chinese (``lang="zh"``) a tier with a label shows it before its name
    (``金卡会员 / gold (level 2)``). Customers without a tier, if any, are
    offered as ``(no tier)`` with level :data:`NO_TIER`.
    """
    if "tier_level" not in features:
        return []
    with store.connect() as conn:
        tiers = conn.execute(select(Tier.level, Tier.name, Tier.label)).all()
    names = {
        level: f"{label} / {name}" if lang == "zh" and label else name
        for level, name, label in tiers
    }
    levels = sorted(int(v) for v in features["tier_level"].dropna().unique())
    options = [(f"{names.get(v, v)} (level {v})", v) for v in levels]
    if features["tier_level"].isna().any():
        options.append(("(no tier)", NO_TIER))
    return options


def tier_clause(levels: Iterable[int]) -> str:
    """Return the rule selecting customers at ``levels`` (:data:`NO_TIER`: without a tier)."""
    chosen = [int(v) for v in levels]
    parts = [f"tier_level in [{', '.join(str(v) for v in chosen if v != NO_TIER)}]"]
    if NO_TIER in chosen:
        parts = parts if len(chosen) > 1 else []
        parts.append("missing(tier_level)")
    return parts[0] if len(parts) == 1 else f"({' or '.join(parts)})"


def channel_options(features: pd.DataFrame, lang: str = "en") -> list[tuple[str, str]]:
    """Return ``(label, channel)`` for each acquisition channel in ``features``, sorted by channel.

    In Chinese (``lang="zh"``) the label puts the channel's Chinese name first
    (``小程序 (mini_program)``); otherwise it is the channel itself.
    """
    if "acquisition_channel" not in features:
        return []
    channels = sorted(str(v) for v in features["acquisition_channel"].dropna().unique())
    labels = VALUE_LABELS["acquisition_channel"]
    return [(f"{labels[c][1]} ({c})" if lang == "zh" and c in labels else c, c) for c in channels]


def check_channels(values: Iterable[Any], options: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """Return channels if each is one of ``options``, given by its code or its Chinese name.

    Raises
    ------
    ValidationError
        For the first value that is not a channel on offer.
    """
    codes = [code for _, code in options]
    by_name = {label.split(" (")[0]: code for label, code in options}
    chosen = (values,) if isinstance(values, str) else tuple(values)
    return check_choices([by_name.get(str(v), v) for v in chosen], codes, "acquisition channel")


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
