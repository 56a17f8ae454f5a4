"""Per-customer reasons: the top SHAP drivers of a score, in plain language.

SHAP contributions (log-odds; the values of LightGBM's ``pred_contrib=True``) are
pooled per *topic* (features that tell one story, see
:mod:`crm_ml.models.phrase_templates`), and each is phrased with the customer's
own values (columns ``rank``, ``topic`` and ``actionable`` left out here)::

    >>> reasons_frame(model.contributions(X), X, language="en")  # doctest: +SKIP
       customer_id  text                                         direction  contribution
       C001         no purchase for 95 days, usually every 30    raises      0.84
       C002         ↓last purchase 3 days ago, usually every 30  lowers     -1.20

Reasons answer "why this score", and a retention agent reads a score as
likely or unlikely. So the ``top_k`` topics kept are those that push the score
towards its side of 50/50 (:data:`DIRECTION_THRESHOLD`): what raises it most
for a score at or above 0.5, what lowers it most below. A customer with a 2%
purchase propensity is told what holds the score down (已591天未购买), not
the few weak things that lift it. The model's base rate is not the line: a
churn model's is often above the churn-risk threshold (82% in the demo), and a
customer at 75% churn risk would then be explained by what lowers the risk.

What a fact means depends on what is scored: "no purchase for 152 days,
usually every 80" argues for a churn risk and against a purchase. Given the
model's ``target`` (``churn``, ``purchase`` or ``purchase:<category>``; :func:`explain`
reads it from the model), each reason is phrased for its direction
(:class:`~crm_ml.models.phrases.PhraseContext`), and a topic whose words read
the other way for this customer (上次购买后未再浏览 shown as why churn is low) is
skipped so the next topic fills in. Without a target the words cannot follow
the direction: they state the facts, and no topic is skipped.

Facts that another topic's phrase already implies for this customer (近180天下单0次
next to 已511天未购买) are pooled into that topic
(:func:`~crm_ml.models.phrase_templates.implied_topics`), so the reasons shown
carry different facts.

Every reason records its direction (``raises``/``lowers``, and the sign of its
``contribution``), and the text of a lowering reason starts with
:data:`LOWERS_MARK` (↓) so that every place that shows only the texts (lists,
customer 360) shows it too. Raising reasons stay unmarked, as every reason read
before directions existed.

Work is vectorised per (rank, topic) pair, so a million customers take
seconds, not minutes.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_ml.errors import ValidationError
from crm_ml.models.phrase_templates import implied_topics, template_for, topic_of
from crm_ml.models.phrases import LANGUAGES, Getter, PhraseContext, Template

#: Probability at or above which reasons say what raises the score; below, what lowers it.
DIRECTION_THRESHOLD = 0.5
#: Start of the text of a reason that lowers the score: short and the same in every language.
LOWERS_MARK = "↓"

#: Whether raising the score of a model of this target reads as lapsing (by the
#: target's part before ``:``); ``positive`` is a model that does not say.
LAPSE_RAISES: dict[str, bool | None] = {"churn": True, "purchase": False, "positive": None}

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
    raises: np.ndarray  # shape (customers,): True where the reasons raise the score


def _topic_matrix(contrib: pd.DataFrame, get: Getter) -> tuple[list[str], np.ndarray]:
    """Sum contributions per topic; return the topic names and an (n, topics) matrix.

    A feature's contribution joins the topic that implies it, for the customers
    where it does (:func:`~crm_ml.models.phrase_templates.implied_topics`).
    """
    features = [str(c) for c in contrib.columns]
    topics = list(dict.fromkeys(topic_of(f) for f in features))
    position = {t: i for i, t in enumerate(topics)}
    indicator = np.zeros((len(features), len(topics)))
    for row, feature in enumerate(features):
        indicator[row, position[topic_of(feature)]] = 1.0
    values = contrib.to_numpy(dtype=float)
    matrix = values @ indicator
    for col, feature in enumerate(features):
        if get(feature) is None:
            continue
        for topic, implied in implied_topics(feature):
            if topic not in position or topic == topic_of(feature):
                continue
            rows = np.asarray(implied(get), dtype=bool)
            matrix[rows, position[topic_of(feature)]] -= values[rows, col]
            matrix[rows, position[topic]] += values[rows, col]
    return topics, matrix


def _towards_lapse(target: str | None, raises: np.ndarray) -> np.ndarray | None:
    """Per customer, whether the reasons push towards lapsing; None for an unknown target."""
    if target is None:
        return None
    base = target.split(":", 1)[0]
    if base not in LAPSE_RAISES:
        raise ValidationError(
            f"target must be one of {', '.join(LAPSE_RAISES)} (or purchase:<category>), "
            f"got {target!r}; pass the model's target (model.target) or leave it out."
        )
    lapse_raises = LAPSE_RAISES[base]
    if lapse_raises is None:
        return None
    return raises if lapse_raises else ~raises


def _against_direction(
    topics: list[str], get: Getter, towards_lapse: np.ndarray | None, size: int
) -> np.ndarray:
    """(n, topics): True where a topic's words read the other way from the customer's reasons."""
    against = np.zeros((size, len(topics)), dtype=bool)
    if towards_lapse is None:
        return against
    lapse_sign = np.where(towards_lapse, 1, -1)
    for t, topic in enumerate(topics):
        lean = template_for(topic).lean
        if lean is not None:
            against[:, t] = np.asarray(lean(get)) * lapse_sign < 0
    return against


def _raises(
    contributions: pd.DataFrame, topic_total: np.ndarray, probability: npt.ArrayLike | None
) -> np.ndarray:
    """Whether each customer's score is at or above :data:`DIRECTION_THRESHOLD`.

    ``probability`` is the score as shown (calibrated); without it, the trees'
    log-odds (contributions plus ``bias``) stand in, which can disagree with a
    calibrated score near the threshold.
    """
    if probability is not None:
        p = np.asarray(probability, dtype=float).reshape(-1)
        if p.size != len(contributions):
            raise ValidationError(
                f"Probability and contributions differ in length: {p.size} vs {len(contributions)}."
            )
        return p >= DIRECTION_THRESHOLD
    threshold = np.log(DIRECTION_THRESHOLD / (1 - DIRECTION_THRESHOLD))
    bias = contributions["bias"].to_numpy(dtype=float) if "bias" in contributions else 0.0
    return np.asarray(topic_total + bias >= threshold)


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
    probability: npt.ArrayLike | None = None,
    target: str | None = None,
) -> TopReasons:
    """Pick and phrase each customer's top ``top_k`` topics towards their score's side.

    For a score at or above :data:`DIRECTION_THRESHOLD` the topics that raise it
    most, below it those that lower it most; either with a contribution beyond
    ``min_contribution`` in that direction. ``contributions`` (one column per
    feature, plus ``bias``) and ``features`` must hold the same customers in the
    same order; ``probability`` (the calibrated score, same order) decides the
    side, else the contributions' log-odds do. ``target`` (``churn``,
    ``purchase`` or ``purchase:<category>``: the model's ``target``) lets the
    words follow the direction: no reason then argues against its own.
    """
    if language not in LANGUAGES:
        raise ValidationError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}.")
    if len(contributions) != len(features):
        raise ValidationError(
            f"Contributions and features differ in length: {len(contributions)} vs {len(features)}."
        )
    columns = _Columns(features)
    every = columns.array  # a getter over every customer, without copying the columns
    topics, matrix = _topic_matrix(contributions.drop(columns="bias", errors="ignore"), every)
    raises = _raises(contributions, matrix.sum(axis=1), probability)
    towards_lapse = _towards_lapse(target, raises)
    sign = np.where(raises, 1.0, -1.0)[:, None]
    towards = matrix * sign
    towards[_against_direction(topics, every, towards_lapse, len(matrix))] = -np.inf
    k = max(min(top_k, len(topics)), 0)
    idx = _top_k(towards, k) if k else np.zeros((len(matrix), 0), dtype=int)
    values = np.take_along_axis(matrix, idx, axis=1)
    valid = np.take_along_axis(towards, idx, axis=1) > min_contribution
    ctx = context or PhraseContext()
    text, actionable = _phrase(topics, idx, valid, columns, language, ctx, towards_lapse)
    lowering = valid & ~raises[:, None]
    text[lowering] = LOWERS_MARK + text[lowering]
    return TopReasons(contributions.index, topics, idx, values, valid, text, actionable, raises)


def _phrase(
    topics: list[str],
    idx: np.ndarray,
    valid: np.ndarray,
    columns: _Columns,
    language: str,
    ctx: PhraseContext,
    towards_lapse: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the text and actionable flag of each kept (customer, rank).

    One call per topic and direction, so a template words the facts for the way
    they push (:attr:`PhraseContext.towards_lapse`).
    """
    text = np.full(idx.shape, "", dtype=object)
    actionable = np.zeros(idx.shape, dtype=bool)
    sides: list[tuple[bool | None, np.ndarray]] = [(None, np.ones(len(idx), dtype=bool))]
    if towards_lapse is not None:
        sides = [(True, towards_lapse), (False, ~towards_lapse)]
    for slot in range(idx.shape[1]):
        for lapse, side in sides:
            kept = valid[:, slot] & side
            side_ctx = replace(ctx, towards_lapse=lapse)
            for t in np.unique(idx[kept, slot]):
                rows = np.flatnonzero(kept & (idx[:, slot] == t))
                template = template_for(topics[t])
                text[rows, slot], actionable[rows, slot] = _phrase_rows(
                    template, topics[t], columns.getter(rows), rows.size, language, side_ctx
                )
    return text, actionable


def _phrase_rows(
    template: Template, topic: str, get: Getter, size: int, language: str, ctx: PhraseContext
) -> tuple[list[str] | str, np.ndarray]:
    phrases = template.phrase(get, language, ctx)
    return (phrases if len(phrases) == size else topic), template.actionable_rows(get, size)


def reasons_frame(
    contributions: pd.DataFrame, features: pd.DataFrame, **kwargs: object
) -> pd.DataFrame:
    """Return each customer's reasons as a long frame (see :func:`top_reasons` for options).

    Returns
    -------
    pandas.DataFrame
        One row per customer and reason: the contributions' index (e.g.
        ``customer_id``), ``rank`` (1 = strongest), ``topic``, ``text`` (starting
        with ↓ when it lowers the score), ``actionable``, ``direction``
        (``raises`` or ``lowers``), ``contribution`` (log-odds, negative when it
        lowers the score).
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
            "direction": np.where(top.raises[rows], "raises", "lowers").astype(object),
            "contribution": top.contribution[rows, slots],
        }
    )


#: The JSON between a reason's text and its contribution, by ``actionable * 2 + raises``.
_FLAGS = pa.array(
    [
        f', "actionable": {a}, "direction": "{d}"'
        for a in ("false", "true")
        for d in ("lowers", "raises")
    ]
)


def _spread(values: list[str], codes: npt.ArrayLike) -> pa.Array:
    """``values[codes]`` as an Arrow string array: few distinct strings, many rows."""
    return pa.array(values, type=pa.string()).take(pa.array(codes))


def _json_contributions(contribution: np.ndarray) -> pa.Array:
    """``, "contribution": -0.1234}`` per value, rounded to 4 decimals (half to even)."""
    codes, units = pd.factorize(np.rint(contribution * 1e4).astype(np.int64))
    return _spread([f', "contribution": {u / 1e4:.4f}}}' for u in units.tolist()], codes)


def reasons_json(
    contributions: pd.DataFrame, features: pd.DataFrame, **kwargs: object
) -> pd.Series:
    """Return each customer's reasons as JSON text, as stored in ``score.reasons``.

    Returns
    -------
    pandas.Series
        Indexed like ``contributions``; each value a JSON list of
        ``{"feature", "text", "actionable", "direction", "contribution"}``,
        strongest first (see :func:`reasons_frame` for what they hold).
    """
    top = top_reasons(contributions, features, **kwargs)  # type: ignore[arg-type]
    heads = [f'{{"feature": {_quote(t)}, "text": ' for t in top.topics]
    # Customers share most texts and rounded numbers, so each distinct one is quoted or
    # formatted once and the rows are joined in Arrow: no Python string per customer.
    joined = pa.repeat(pa.scalar("", pa.string()), len(top.index))
    for slot in range(top.valid.shape[1]):
        codes, texts = pd.factorize(top.text[:, slot])
        piece = pc.binary_join_element_wise(
            _spread(heads, top.topic_idx[:, slot]),
            _spread([_quote(t) for t in texts], codes),
            _FLAGS.take(pa.array(top.actionable[:, slot] * 2 + top.raises)),
            _json_contributions(top.contribution[:, slot]),
            "",
        )
        separator = pc.if_else(pc.equal(joined, ""), "", ", ")
        extended = pc.binary_join_element_wise(joined, piece, separator)
        joined = pc.if_else(pa.array(top.valid[:, slot]), extended, joined)
    reasons = pc.binary_join_element_wise("[", joined, "]", "")
    return pd.Series(pd.array(reasons, dtype="str"), index=top.index, name="reasons")


def model_context(model: object, context: PhraseContext | None = None) -> PhraseContext:
    """Return ``context`` (or the default one) holding ``model``'s training means as averages.

    A context that already has averages keeps them; a model saved before the means
    were kept has none, and its reasons then claim no comparison with the average.
    """
    ctx = context or PhraseContext()
    means = getattr(model, "feature_means_", None)
    return replace(ctx, averages=dict(means)) if means and not ctx.averages else ctx


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

    The calibrated probability decides whether a customer's reasons raise or
    lower the score (see :func:`top_reasons`). ``tier_names`` (level -> name,
    e.g. ``{0: "Member", 1: "Silver", 2: "Gold"}``) lets a downgrade read
    "downgraded from Gold 20 days ago".
    """
    probability, contributions = model.explain_proba(features)  # type: ignore[attr-defined]
    context = model_context(
        model, PhraseContext(currency=currency, tier_names=dict(tier_names or {}))
    )
    return reasons_frame(
        contributions,
        features,
        top_k=top_k,
        language=language,
        context=context,
        probability=probability,
        target=getattr(model, "target", None),
    )
