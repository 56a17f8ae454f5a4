"""Segment portraits: how a segment differs from the whole base.

A portrait compares the segment with every customer in the features frame:
means of key numeric features, shares of each category of spend, tiers,
channels and profile values, and shares of each tag.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features.spec import CATEGORY_LABELS, VALUE_LABELS
from crm_ml.plotting import font_families
from crm_ml.rules import as_timestamp, tag_members_at
from crm_ml.store.connection import Store
from crm_ml.store.tiers import tier_names_from_store
from crm_ml.tags.definitions import require_tags, tag_definitions_frame

log = logging.getLogger(__name__)

#: Numeric features shown by default, when present in the frame.
KEY_FEATURES = (
    "recency_days",
    "orders_365d",
    "revenue_365d",
    "avg_order_value",
    "tenure_days",
    "interpurchase_mean_days",
    "discount_share",
    "points_balance",
    "coupon_redemption_rate",
    "p_churn",
    "p_purchase",
)
#: Categorical columns shown as shares per value, with their portrait section.
LEVEL_FEATURES = {
    "tier_level": "tier",
    "acquisition_channel": "channel",
    "city_tier": "profile",
    "gender": "profile",
    "age_band": "profile",
}
#: What the bars of :func:`plot_portrait` call the key features: (English, Chinese).
FEATURE_NAMES = {
    "recency_days": ("days since last purchase", "距上次购买天数"),
    "orders_365d": ("orders, last 12 months", "近12个月订单数"),
    "revenue_365d": ("net revenue, last 12 months", "近12个月净消费额"),
    "avg_order_value": ("average order value", "客单价"),
    "tenure_days": ("days as a customer", "成为客户天数"),
    "interpurchase_mean_days": ("usual days between purchases", "平均购买间隔天数"),
    "discount_share": ("share of spend discounted", "折扣消费占比"),
    "points_balance": ("points balance", "积分余额"),
    "coupon_redemption_rate": ("coupon redemption rate", "优惠券核销率"),
    "p_churn": ("churn probability", "流失概率"),
    "p_purchase": ("purchase probability", "购买概率"),
}
#: What the bars call a category column, before its value: (English, Chinese).
LEVEL_NAMES = {
    "tier_level": ("tier", "会员等级"),
    "acquisition_channel": ("channel", "获客渠道"),
    "city_tier": ("city tier", "城市等级"),
    "gender": ("gender", "性别"),
    "age_band": ("age", "年龄段"),
}
COLUMNS = ["section", "feature", "level", "segment", "base", "difference", "lift"]
#: Text of :func:`plot_portrait` per language.
#: Fewer members than this get no portrait: its averages and shares would describe
#: individuals (one customer's age band, gender or maternity purchases).
MIN_PORTRAIT_SIZE = 10

PLOT_LABELS = {
    "en": {
        "axis": "segment vs base (std. difference; shares: 10 × share difference)",
        "title": "Segment portrait",
        "empty": "No customers in this segment: nothing to compare with the base.",
        "small": f"Fewer than {MIN_PORTRAIT_SIZE} customers in this segment: no portrait, "
        "as it would describe individuals.",
    },
    "zh": {
        "axis": "分群与整体之差（标准化差；占比：10 × 占比差）",
        "title": "分群画像",
        "empty": "该分群没有客户，无法与整体比较。",
        "small": f"该分群少于{MIN_PORTRAIT_SIZE}位客户：画像会描述到个人，不予显示。",
    },
}


def _numeric_rows(features: pd.DataFrame, inside: pd.Series, names: Sequence[str]) -> list[dict]:
    rows = []
    for name in names:
        values = pd.to_numeric(features[name], errors="coerce").astype("float64")
        seg, base, spread = values[inside].mean(), values.mean(), values.std()
        section = "category" if name.startswith("affinity_") else "feature"
        rows.append(
            {
                "section": section,
                "feature": name,
                "level": "mean",
                "segment": seg,
                "base": base,
                "difference": (seg - base) / spread if spread else np.nan,
                "lift": seg / base if base else np.nan,
            }
        )
    return rows


def _share_rows(values: pd.Series, inside: pd.Series, section: str, name: str) -> list[dict]:
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")  # levels such as tier_level: "2", not "2.0"
    text = values.astype("string").fillna("unknown")
    seg = text[inside].value_counts(normalize=True)
    base = text.value_counts(normalize=True)
    # An empty segment has no shares (NaN), not a share of 0 of every level.
    default = 0.0 if inside.any() else np.nan
    return [
        {
            "section": section,
            "feature": name,
            "level": str(level),
            "segment": float(seg.get(level, default)),
            "base": float(share),
            "difference": float(seg.get(level, default)) - float(share),
            "lift": float(seg.get(level, default)) / float(share),
        }
        for level, share in base.items()
    ]


def _members_in(features: pd.DataFrame, members: Iterable[str]) -> pd.Series:
    """Return a boolean Series over ``features.index``: who is a member.

    Raises
    ------
    ValidationError
        When members are given but none is in ``features`` (ids and features
        from different stores or dates); members partly missing are logged.
    """
    given = pd.Index(list(members), dtype="str").unique()
    absent = given.difference(features.index)
    if len(given) and len(absent) == len(given):
        raise ValidationError(
            f"None of the {len(given)} members given is in the features frame "
            f"(e.g. {absent[0]!r}); pass the segment's members and the features of the same "
            "store and date."
        )
    if len(absent):
        log.warning(
            "%d of %d members are not in the features frame and are left out of the "
            "portrait (e.g. %r).",
            len(absent), len(given), absent[0],
        )  # fmt: skip
    return pd.Series(features.index.isin(given), index=features.index)


def segment_portrait(
    features: pd.DataFrame,
    members: Iterable[str],
    *,
    tag_flags: pd.DataFrame | None = None,
    numeric: Sequence[str] | None = None,
    min_size: int = MIN_PORTRAIT_SIZE,
) -> pd.DataFrame:
    """Compare a segment with the whole base.

    Parameters
    ----------
    features : pandas.DataFrame
        Indexed by ``customer_id``: the base.
    members : iterable of str
        The segment's customers. Those not in ``features`` are left out, with a
        warning; none at all in it is an error. An empty segment, or one of
        fewer than ``min_size`` customers (whose averages would describe
        individuals), gives NaN in ``segment``, ``difference`` and
        ``lift``; ``attrs["members"]`` holds its size.
    tag_flags : pandas.DataFrame, optional
        Indexed by ``customer_id``, one boolean column per tag (see :func:`tag_flags`).
    numeric : sequence of str, optional
        Numeric features to compare; :data:`KEY_FEATURES` present in the frame by default.
    min_size : int
        Fewer members than this are described as no members (see ``members``).

    Returns
    -------
    pandas.DataFrame
        Columns ``section`` (feature, category, tier, channel, profile, tag),
        ``feature``, ``level`` (``mean`` or the category value), ``segment``,
        ``base``, ``difference`` (standardised mean difference for means, share
        difference for shares) and ``lift`` (segment / base). Within each
        section, rows are sorted by absolute difference, largest first.

    Raises
    ------
    ValidationError
        If members are given and none is in ``features``.
    """
    inside = _members_in(features, members)
    size = int(inside.sum())
    if size < min_size:  # shown as an empty segment: no individual's profile
        inside = inside & False
    names = list(numeric) if numeric is not None else [c for c in KEY_FEATURES if c in features]
    names += [c for c in features.columns if str(c).startswith("affinity_")]
    rows = _numeric_rows(features, inside, names)
    for name, section in LEVEL_FEATURES.items():
        if name in features.columns:
            rows += _share_rows(features[name], inside, section, name)
    if tag_flags is not None:
        flags = tag_flags.reindex(features.index).fillna(False).astype(bool)
        for tag in flags.columns:
            rows += [
                r for r in _share_rows(flags[tag], inside, "tag", str(tag)) if r["level"] == "True"
            ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = frame["difference"].abs().fillna(-1)
    portrait = (
        frame.assign(_order=order)
        .sort_values(["section", "_order"], ascending=[True, False], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    portrait.attrs["members"], portrait.attrs["min_size"] = size, min_size
    return portrait


def tag_flags(store: Store, tags: Iterable[str], on: Any, index: pd.Index) -> pd.DataFrame:
    """Return one boolean column per tag: who held it on ``on``.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``index`` (``customer_id``); one column per tag.

    Raises
    ------
    NotFoundError
        If a tag is not defined, with the nearest names.
    """
    with store.connect() as conn:
        members = tag_members_at(conn, require_tags(conn, tags), as_timestamp(on, "on"))
    return pd.DataFrame({t: index.isin(m) for t, m in members.items()}, index=index)


def portrait_names(store: Store, lang: str = "en") -> dict[str, str]:
    """Return the store's names for a portrait's tags and tiers, for :func:`plot_portrait`.

    Tags are called by their label (``高价值客户``) and tier levels by the
    tier's label in Chinese (``金卡会员``), by its name in English (``gold``).

    Returns
    -------
    dict of str to str
        Tag name -> label, and ``"tier_level=<level>"`` -> tier name.
    """
    tiers = tier_names_from_store(store, language=lang)
    names = {f"tier_level={level}": name for level, name in tiers.items()}
    labels = tag_definitions_frame(store)["label"]
    return names | {str(tag): str(label) for tag, label in labels.items()}


def bar_name(
    section: str, feature: str, level: str, lang: str = "en", names: Mapping[str, str] | None = None
) -> str:
    """Return what a portrait row is called on its bar, in ``lang`` (``zh`` or ``en``).

    ``names`` (from :func:`portrait_names`) names tags and tiers; the key
    features, category affinities and profile values have built-in names; any
    other feature keeps its column name.
    """
    zh, names = lang == "zh", names or {}
    if section == "tag":
        return names.get(feature, feature)
    if level == "mean":
        return _feature_name(feature, zh)
    return names.get(f"{feature}={level}") or _level_name(feature, level, zh)


def _feature_name(feature: str, zh: bool) -> str:
    if feature.startswith("affinity_"):
        category = feature.removeprefix("affinity_")
        return (
            f"品类偏好：{CATEGORY_LABELS.get(category, category)}"
            if zh
            else f"affinity: {category}"
        )
    return FEATURE_NAMES[feature][zh] if feature in FEATURE_NAMES else feature


def _level_name(feature: str, level: str, zh: bool) -> str:
    if feature not in LEVEL_NAMES:
        return f"{feature}={level}"
    unknown = ("unknown", "未知") if level == "unknown" else (level, level)
    value = VALUE_LABELS.get(feature, {}).get(level, unknown)
    return LEVEL_NAMES[feature][zh] + ("：" if zh else ": ") + value[zh]


def plot_portrait(
    portrait: pd.DataFrame,
    *,
    title: str = "",
    top: int = 15,
    lang: str = "en",
    names: Mapping[str, str] | None = None,
) -> Figure:
    """Draw the largest differences of a portrait as horizontal bars.

    Means are shown as standardised differences and shares as 10 × the share
    difference (0.1 more of the segment than of the base reads as 1), so both
    read on one axis as "how unusual is the segment". The portrait of an
    empty segment draws a message instead of bars.

    Parameters
    ----------
    portrait : pandas.DataFrame
        From :func:`segment_portrait`.
    title : str
    top : int
        Bars drawn, largest first.
    lang : {"en", "zh"}
        Language of the bars' names, the axis label, the default title and the
        empty message.
    names : mapping of str to str, optional
        The store's names of tags and tiers (:func:`portrait_names`); without
        them, tags and tiers are shown by their codes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if lang not in PLOT_LABELS:
        raise ConfigError(f"lang={lang!r} is not supported; use 'en' or 'zh'.")
    text = PLOT_LABELS[lang]
    if portrait["segment"].isna().all():
        small = 0 < portrait.attrs.get("members", 0) < portrait.attrs.get("min_size", 0)
        figure = _message_figure(text["small" if small else "empty"])
    else:
        named = functools.partial(bar_name, lang=lang, names=names)
        figure = _bars(portrait, top, text["axis"], named)
    figure.axes[0].set_title(title or text["title"])
    _use_cjk_fonts(figure, lang)
    figure.tight_layout()
    return figure


def _use_cjk_fonts(figure: Figure, lang: str) -> None:
    # Labels, titles and category values (channels, tiers) may be Chinese whatever
    # the label language. Fonts are set on each text, and on tick labels that are
    # made only when the figure is drawn, since an rc_context would end before that.
    families = font_families(lang)
    for text in figure.findobj(Text):
        text.set_fontfamily(families)
    for axes in figure.axes:
        axes.tick_params(labelfontfamily=families)


def _bars(
    portrait: pd.DataFrame, top: int, axis_label: str, name: Callable[[str, str, str], str]
) -> Figure:
    frame = portrait.dropna(subset=["difference"]).copy()
    is_share = frame["level"] != "mean"
    frame["score"] = np.where(is_share, frame["difference"] * 10, frame["difference"])
    rows = frame[["section", "feature", "level"]].itertuples(index=False, name=None)
    frame["name"] = [name(section, feature, level) for section, feature, level in rows]
    frame = frame.reindex(frame["score"].abs().sort_values(ascending=False).index).head(top)
    figure = Figure(figsize=(8, 0.35 * max(len(frame), 4) + 1.2))
    axes = figure.subplots()
    colours = ["#c0392b" if v > 0 else "#2e86c1" for v in frame["score"]]
    axes.barh(frame["name"][::-1], frame["score"][::-1], color=colours[::-1])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(axis_label)
    return figure


def _message_figure(message: str) -> Figure:
    figure = Figure(figsize=(8, 2.0))
    axes = figure.subplots()
    axes.axis("off")
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=12)
    return figure
