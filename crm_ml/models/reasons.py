"""Per-customer reasons: the top SHAP drivers of a score, in plain language.

SHAP contributions (log-odds; the values of LightGBM's ``pred_contrib=True``) are
pooled per *topic* (features that tell one story, see
:mod:`crm_ml.models.phrase_templates`), the ``top_k`` topics that push the score up
the most are kept, and each is phrased with the customer's own values::

    >>> reasons_frame(model.contributions(X), X, language="en")  # doctest: +SKIP
       customer_id  rank  topic    text                                  actionable  contribution
       C001         1     recency  no purchase for 95 days, usually every 30  False  0.84

Work is vectorised per (rank, topic) pair, so a million customers take
seconds, not minutes.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_ml.errors import ValidationError
from crm_ml.models.phrase_templates import template_for, topic_of
from crm_ml.models.phrases import LANGUAGES, Getter, PhraseContext

#: JSON string quoting (C implementation, keeps Chinese as is rather than \\u-escaping it).
_quote = json.encoder.encode_basestring


@dataclass(frozen=True)
class TopReasons:
    """The top topics per customer: arrays of shape ``(customers, top_k)``."""

    index: pd.Index
    topics: list[str]
    topic_idx: np.ndarray
    contribution: np.ndarray
    valid: np.ndarray
    text: np.ndarray
    actionable: np.ndarray


def _topic_matrix(contrib: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Sum contributions per topic; return the topic names and an (n, topics) matrix."""
    features = [str(c) for c in contrib.columns]
    topics = list(dict.fromkeys(topic_of(f) for f in features))
    position = {t: i for i, t in enumerate(topics)}
    indicator = np.zeros((len(features), len(topics)))
    for row, feature in enumerate(features):
        indicator[row, position[topic_of(feature)]] = 1.0
    return topics, contrib.to_numpy(dtype=float) @ indicator


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest values per row, largest first."""
    if values.shape[1] > k:
        idx = np.argpartition(-values, k - 1, axis=1)[:, :k]
    else:
        idx = np.tile(np.arange(values.shape[1]), (values.shape[0], 1))
    order = np.argsort(-np.take_along_axis(values, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


class _Columns:
    """Feature columns as numpy arrays, converted once and sliced per template."""

    def __init__(self, features: pd.DataFrame) -> None:
        self._features = features
        self._cache: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray | None:
        if name not in self._features.columns:
            return None
        if name not in self._cache:
            series = self._features[name]
            numeric = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
            if numeric:
                self._cache[name] = series.to_numpy(dtype=float, na_value=np.nan)
            else:
                self._cache[name] = series.astype(object).to_numpy()
        return self._cache[name]

    def getter(self, rows: np.ndarray) -> Getter:
        def get(name: str) -> np.ndarray | None:
            values = self.array(name)
            return None if values is None else values[rows]

        return get


def top_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    top_k: int = 3,
    language: str = "en",
    context: PhraseContext | None = None,
    min_contribution: float = 0.0,
) -> TopReasons:
    """Pick and phrase each customer's top ``top_k`` topics (contribution > ``min_contribution``).

    ``contributions`` (one column per feature, plus an ignored ``bias``) and
    ``features`` must hold the same customers in the same order.
    """
    if language not in LANGUAGES:
        raise ValidationError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}.")
    if len(contributions) != len(features):
        raise ValidationError(
            f"Contributions and features differ in length: {len(contributions)} vs {len(features)}."
        )
    ctx = context or PhraseContext()
    topics, matrix = _topic_matrix(contributions.drop(columns="bias", errors="ignore"))
    k = max(min(top_k, len(topics)), 0)
    idx = _top_k(matrix, k) if k else np.zeros((len(matrix), 0), dtype=int)
    values = np.take_along_axis(matrix, idx, axis=1)
    valid = values > min_contribution
    text = np.full(idx.shape, "", dtype=object)
    actionable = np.zeros(idx.shape, dtype=bool)
    columns = _Columns(features)
    for slot in range(k):
        for t in np.unique(idx[valid[:, slot], slot]):
            rows = np.flatnonzero(valid[:, slot] & (idx[:, slot] == t))
            template = template_for(topics[t])
            phrases = template.phrase(columns.getter(rows), language, ctx)
            text[rows, slot] = phrases if len(phrases) == rows.size else topics[t]
            actionable[rows, slot] = template.actionable
    return TopReasons(contributions.index, topics, idx, values, valid, text, actionable)


def reasons_frame(
    contributions: pd.DataFrame, features: pd.DataFrame, **kwargs: object
) -> pd.DataFrame:
    """Return each customer's reasons as a long frame (see :func:`top_reasons` for options).

    Returns
    -------
    pandas.DataFrame
        One row per customer and reason: the contributions' index (e.g.
        ``customer_id``), ``rank`` (1 = strongest), ``topic``, ``text``,
        ``actionable``, ``contribution`` (log-odds).
    """
    top = top_reasons(contributions, features, **kwargs)  # type: ignore[arg-type]
    rows, slots = np.nonzero(top.valid)
    name = top.index.name or "customer_id"
    return pd.DataFrame(
        {
            name: top.index.to_numpy()[rows],
            "rank": slots + 1,
            "topic": np.asarray(top.topics, dtype=object)[top.topic_idx[rows, slots]],
            "text": top.text[rows, slots],
            "actionable": top.actionable[rows, slots],
            "contribution": top.contribution[rows, slots],
        }
    )


def reasons_json(
    contributions: pd.DataFrame, features: pd.DataFrame, **kwargs: object
) -> pd.Series:
    """Return each customer's reasons as JSON text, as stored in ``score.reasons``.

    Returns
    -------
    pandas.Series
        Indexed like ``contributions``; each value a JSON list of
        ``{"feature", "text", "actionable", "contribution"}``, strongest first.
    """
    top = top_reasons(contributions, features, **kwargs)  # type: ignore[arg-type]
    n, k = top.valid.shape
    # Built with object-array arithmetic (one C loop per slot), not per-row Python.
    heads = np.array([f'{{"feature": {_quote(t)}, "text": ' for t in top.topics], dtype=object)
    joined = np.full(n, "", dtype=object)
    for slot in range(k):
        rows = np.flatnonzero(top.valid[:, slot])
        if rows.size == 0:
            break
        flags = np.where(
            top.actionable[rows, slot], ', "actionable": true', ', "actionable": false'
        )
        numbers = [f', "contribution": {c:.4f}}}' for c in top.contribution[rows, slot].tolist()]
        texts = np.array([_quote(t) for t in top.text[rows, slot]], dtype=object)
        tails = flags.astype(object) + np.array(numbers, dtype=object)
        piece = heads[top.topic_idx[rows, slot]] + texts + tails
        joined[rows] = piece if slot == 0 else joined[rows] + ", " + piece
    return pd.Series("[" + joined + "]", index=top.index, name="reasons", dtype=object)


def explain(
    model: object,
    features: pd.DataFrame,
    *,
    top_k: int = 3,
    language: str = "en",
    currency: str = "CNY",
    tier_names: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """Return a fitted model's top reasons per customer (see :func:`reasons_frame`).

    ``tier_names`` (level -> name, e.g. ``{0: "Member", 1: "Silver", 2: "Gold"}``)
    lets a downgrade read "downgraded from Gold 20 days ago".
    """
    contributions = model.contributions(features)  # type: ignore[attr-defined]
    context = PhraseContext(currency=currency, tier_names=dict(tier_names or {}))
    return reasons_frame(contributions, features, top_k=top_k, language=language, context=context)
