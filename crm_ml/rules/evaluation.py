"""What a checked rule is and what it is evaluated over: :class:`Rule` and :class:`RuleContext`.

Also the value helpers that evaluators share: missing values read as false,
known-value masks, and LIKE patterns translated to regular expressions.
:mod:`crm_ml.rules.compiler` builds the evaluators and re-exports these names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from crm_ml.errors import RuleError
from crm_ml.rules.vocabulary import SCORE_FIELDS

Evaluator = Callable[["RuleContext"], Any]


@dataclass(frozen=True)
class RuleContext:
    """What a rule is evaluated over.

    Attributes
    ----------
    features : pandas.DataFrame
        Indexed by ``customer_id``: features and score columns (``p_churn`` …).
    tags : Mapping[str, pandas.Index]
        For each tag the rule names, the customers who have it at as_of.
    consents : Mapping[tuple[str, str], pandas.Index]
        For each ``(channel, purpose)``, the customers whose consent is granted.
    """

    features: pd.DataFrame
    tags: Mapping[str, pd.Index] = field(default_factory=dict)
    consents: Mapping[tuple[str, str], pd.Index] = field(default_factory=dict)

    def column(self, name: str, rule: str) -> pd.Series:
        """Return feature ``name``, or a :class:`RuleError` naming the missing column."""
        if name not in self.features.columns:
            raise RuleError(
                f"Rule {rule!r} needs the column {name!r}, which the features frame lacks "
                f"(it has {len(self.features.columns)} columns). Compute the feature group that "
                "provides it, or pass it as a column of the frame."
            )
        return self.features[name]

    def members(self, index: pd.Index, rule: str, what: str) -> pd.Series:
        """Flag the rows of the frame found in ``index``."""
        return pd.Series(self.features.index.isin(index), index=self.features.index, name=what)


@dataclass(frozen=True)
class Rule:
    """A checked rule, ready to evaluate.

    Attributes
    ----------
    text : str
        The rule as written.
    fields : frozenset of str
        Features and scores it reads.
    tags : frozenset of str
        Tags it names in ``tag(...)``.
    consents : frozenset of tuple[str, str]
        ``(channel, purpose)`` pairs it names in ``consent(...)``.
    """

    text: str
    fields: frozenset[str]
    tags: frozenset[str]
    consents: frozenset[tuple[str, str]]
    _evaluate: Evaluator = field(repr=False, compare=False)

    @property
    def scores(self) -> frozenset[str]:
        """Score fields (``p_churn``, ``p_purchase`` …) it reads."""
        return self.fields & frozenset(SCORE_FIELDS)

    def evaluate(self, context: RuleContext) -> pd.Series:
        """Return a boolean Series over ``context.features.index``: who matches."""
        result = self._evaluate(context)
        index = context.features.index
        if not isinstance(result, pd.Series):
            return pd.Series(bool(result), index=index, name="matches")
        return _to_bool(result).rename("matches")


def _to_bool(value: Any) -> Any:
    """Turn a nullable boolean result into plain booleans, missing as False."""
    if isinstance(value, pd.Series):
        return value.astype("boolean").fillna(False).astype(bool)
    return bool(value)


def _known(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.notna()
    return not (value is None or (isinstance(value, float) and math.isnan(value)))


def _like_regex(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``, backslash escapes) into an anchored regex."""
    parts, escaped = [], False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))
    return "".join(parts)
