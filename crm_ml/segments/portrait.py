"""Segment portraits: how a segment differs from the whole base.

A portrait compares the segment with every customer in the features frame:
means of key numeric features, shares of each category of spend, tiers,
channels and profile values, and shares of each tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crm_ml.plotting import font_families
from crm_ml.rules import as_timestamp, tag_members_at
from crm_ml.store.connection import Store

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
COLUMNS = ["section", "feature", "level", "segment", "base", "difference", "lift"]


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
    text = values.astype("string").fillna("unknown")
    seg = text[inside].value_counts(normalize=True)
    base = text.value_counts(normalize=True)
    return [
        {
            "section": section,
            "feature": name,
            "level": str(level),
            "segment": float(seg.get(level, 0.0)),
            "base": float(share),
            "difference": float(seg.get(level, 0.0)) - float(share),
            "lift": float(seg.get(level, 0.0)) / float(share),
        }
        for level, share in base.items()
    ]


def segment_portrait(
    features: pd.DataFrame,
    members: Iterable[str],
    *,
    tag_flags: pd.DataFrame | None = None,
    numeric: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare a segment with the whole base.

    Parameters
    ----------
    features : pandas.DataFrame
        Indexed by ``customer_id``: the base.
    members : iterable of str
        The segment's customers (those not in ``features`` are ignored).
    tag_flags : pandas.DataFrame, optional
        Indexed by ``customer_id``, one boolean column per tag (see :func:`tag_flags`).
    numeric : sequence of str, optional
        Numeric features to compare; :data:`KEY_FEATURES` present in the frame by default.

    Returns
    -------
    pandas.DataFrame
        Columns ``section`` (feature, category, tier, channel, profile, tag),
        ``feature``, ``level`` (``mean`` or the category value), ``segment``,
        ``base``, ``difference`` (standardised mean difference for means, share
        difference for shares) and ``lift`` (segment / base). Within each
        section, rows are sorted by absolute difference, largest first.
    """
    inside = pd.Series(features.index.isin(list(members)), index=features.index)
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
    return (
        frame.assign(_order=order)
        .sort_values(["section", "_order"], ascending=[True, False], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def tag_flags(store: Store, tags: Iterable[str], on: Any, index: pd.Index) -> pd.DataFrame:
    """Return one boolean column per tag: who held it on ``on``.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``index`` (``customer_id``); one column per tag.
    """
    with store.connect() as conn:
        members = tag_members_at(conn, tags, as_timestamp(on, "on"))
    return pd.DataFrame({t: index.isin(m) for t, m in members.items()}, index=index)


def plot_portrait(portrait: pd.DataFrame, *, title: str = "", top: int = 15) -> Figure:
    """Draw the largest differences of a portrait as horizontal bars.

    Means are shown as standardised differences and shares as 10 × the share
    difference (0.1 more of the segment than of the base reads as 1), so both
    read on one axis as "how unusual is the segment".

    Returns
    -------
    matplotlib.figure.Figure
    """
    frame = portrait.dropna(subset=["difference"]).copy()
    is_share = frame["level"] != "mean"
    frame["score"] = np.where(is_share, frame["difference"] * 10, frame["difference"])
    frame["name"] = np.where(is_share, frame["feature"] + "=" + frame["level"], frame["feature"])
    frame = frame.reindex(frame["score"].abs().sort_values(ascending=False).index).head(top)
    # Chinese labels need a CJK font; the first one installed is used (text is built here).
    with matplotlib.rc_context({"font.sans-serif": font_families()}):
        figure = Figure(figsize=(8, 0.35 * max(len(frame), 4) + 1.2))
        axes = figure.subplots()
        colours = ["#c0392b" if v > 0 else "#2e86c1" for v in frame["score"]]
        axes.barh(frame["name"][::-1], frame["score"][::-1], color=colours[::-1])
        axes.axvline(0, color="black", linewidth=0.8)
        axes.set_xlabel("segment vs base (std. difference; shares: 10 × share difference)")
        axes.set_title(title or "Segment portrait")
        figure.tight_layout()
    return figure
