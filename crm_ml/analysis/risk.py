"""Churn risk and revenue at risk by segment, tier and owner.

Each scored customer's *revenue at risk* is ``p_churn × revenue_12m``: the
churn model's probability times their revenue over the 12 calendar months
before ``as_of``, net of refunds (:func:`revenue_12m`) — the spend expected to
walk away. Summed over a group it is the group's expected lost annual revenue,
and ``sum(p_churn)`` its expected number of churners. The churn-risk lists
(:func:`crm_ml.segments.lists.churn_details`, column ``value_at_risk``) use the
same definition, so a customer has one value at risk in the report and the list.

Scores are the latest run of the model at or before ``as_of`` (a score's
``as_of`` is the cutoff of the data it used). Tier and owner are those in
effect just before ``as_of``; revenue uses orders and refunds before ``as_of``.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sqlalchemy import Connection

from crm_ml.analysis._common import NO_OWNER, NO_SEGMENT, Instant, as_instant, require_columns
from crm_ml.analysis._plot import finish, new_figure
from crm_ml.analysis._read import (
    order_revenue,
    read_owners,
    read_scores,
    read_tier_changes,
    read_tiers,
)
from crm_ml.analysis.headers import group_label, table_headers
from crm_ml.analysis.tiers import NO_TIER, TIER_LABELS, tier_at
from crm_ml.errors import ConfigError, NotFoundError, ValidationError
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

CHURN_MODEL = "crm-churn"

#: Shorthands accepted by :func:`revenue_at_risk`'s ``by``.
GROUPINGS = {
    "segment": ["segment"],
    "tier": ["tier"],
    "owner": ["owner_id", "owner_name"],
    "band": ["band"],
}


def _segment_frame(segments: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """Normalise a customer → segment mapping to columns ``customer_id, segment``."""
    if isinstance(segments, pd.Series):
        frame = segments.rename("segment").rename_axis("customer_id").reset_index()
    elif "customer_id" in segments.columns:
        frame = segments
    else:
        frame = segments.rename_axis("customer_id").reset_index()
    require_columns(frame, ("customer_id", "segment"), what="The segments frame")
    return frame[["customer_id", "segment"]].astype({"customer_id": "str"}).drop_duplicates()


def revenue_12m(conn: Connection, as_of: datetime) -> pd.Series:
    """Each customer's revenue over the 12 calendar months before ``as_of``, net of refunds.

    Orders placed in ``[as_of - 12 months, as_of)``, less the refunds made
    before ``as_of`` (see :func:`crm_ml.analysis._read.order_revenue`). A
    merged record's orders count as its survivor's, as in the features.

    Returns
    -------
    pandas.Series
        Indexed by ``customer_id`` (buyers in the window only; surviving ids),
        named ``revenue_12m``.
    """
    end = pd.Timestamp(as_of)
    orders = order_revenue(conn, end, since=end - pd.DateOffset(months=12))
    return orders.groupby("customer_id")["revenue"].sum().rename("revenue_12m")


def customer_risk(
    store: Store,
    as_of: Instant,
    *,
    segments: pd.DataFrame | pd.Series | None = None,
    model_name: str = CHURN_MODEL,
    labels: str = "tier_id",
) -> pd.DataFrame:
    """Churn probability, 12-month revenue and revenue at risk per scored customer.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        Report date (see the module notes for what is read).
    segments : pandas.DataFrame or pandas.Series, optional
        Customer → segment: a frame with ``customer_id`` and ``segment``
        columns (or ``segment`` indexed by ``customer_id``), or a Series. A
        customer in several segments appears once per segment.
    model_name : str
        Registered name of the churn model whose scores to read.
    labels : str
        How ``tier`` names a tier: ``"tier_id"``, ``"name"`` or ``"label"``
        (the tier table's name or display label, as in
        :func:`crm_ml.analysis.tier_movement`).

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id``, ``p_churn``, ``band``, ``score_as_of``,
        ``revenue_12m``, ``revenue_at_risk``, ``tier`` (``(none)`` without
        one), ``owner_id`` (``(unassigned)``), ``owner_name`` (empty when
        unassigned) and, with ``segments``, ``segment`` (``(none)`` outside
        every segment); one row per scored customer (and segment), sorted by
        ``revenue_at_risk`` descending.

    Raises
    ------
    NotFoundError
        If the model has no scores at or before ``as_of``.
    ConfigError
        If ``labels`` is unknown.
    """
    as_of = as_instant(as_of)
    if labels not in TIER_LABELS:
        raise ConfigError(f"labels={labels!r} must be one of {', '.join(TIER_LABELS)}.")
    risk = read_scores(store, as_of, model_name=model_name)
    if risk.empty:
        raise NotFoundError(
            f"No {model_name!r} scores at or before {as_of}; score customers first "
            "(crm_ml.models scoring) or pick a later as_of."
        )
    with store.connect() as conn:
        revenue = revenue_12m(conn, as_of)
    risk["revenue_12m"] = risk["customer_id"].map(revenue).fillna(0.0)
    risk["revenue_at_risk"] = risk["p_churn"] * risk["revenue_12m"]
    tiers = tier_at(read_tier_changes(store, as_of), as_of)
    if labels != "tier_id":
        table = read_tiers(store)
        names = dict(zip(table["tier_id"], table[labels], strict=True))
        tiers = tiers.map(lambda t: names.get(t, t))
    # As object first: with no tiers at all, map() gives float NaNs that "(none)" cannot fill.
    risk["tier"] = risk["customer_id"].map(tiers).astype("object").fillna(NO_TIER).astype("str")
    risk = risk.merge(read_owners(store, as_of), on="customer_id", how="left")
    risk["owner_id"] = risk["owner_id"].fillna(NO_OWNER)
    risk["owner_name"] = risk["owner_name"].fillna("")
    if segments is not None:
        risk = risk.merge(_segment_frame(segments), on="customer_id", how="left")
        risk["segment"] = risk["segment"].fillna(NO_SEGMENT).astype("str")
    return risk.sort_values(
        ["revenue_at_risk", "customer_id"], ascending=[False, True], ignore_index=True
    )


def _check_grouping(risk: pd.DataFrame, keys: list[str]) -> None:
    """Raise unless ``risk`` has the ``keys`` and grouping by them counts each customer once."""
    if any(key not in risk.columns for key in keys):
        raise ValidationError(
            f"Cannot group by {keys}: the risk frame has {', '.join(risk.columns)}. "
            "Pass segments= to customer_risk to group by segment."
        )
    # A customer in several segments has one row per segment: summed by anything but
    # the segment, their revenue and churn risk would count once per segment.
    if "segment" in risk.columns and "segment" not in keys:
        repeats = int(risk["customer_id"].duplicated().sum()) if "customer_id" in risk else 0
        raise ValidationError(
            f"Cannot group by {keys}: this risk frame has one row per customer and segment "
            f"(customer_risk(..., segments=...); {repeats} of its rows repeat a customer), so "
            "customers in several segments would be counted several times. Group it by "
            "'segment' (alone or with other columns), or group customer_risk(store, as_of) "
            f"without segments= by {keys}."
        )


def _distinct_revenue_at_risk(risk: pd.DataFrame) -> float:
    """Return the revenue at risk of all the frame's customers, each counted once.

    A customer in several segments has one row per segment (all with their
    one revenue at risk), so summing the rows would count them several times.
    """
    customers = risk.drop_duplicates("customer_id") if "segment" in risk.columns else risk
    return float(customers["revenue_at_risk"].sum())


def revenue_at_risk(risk: pd.DataFrame, *, by: str | Sequence[str] = "segment") -> pd.DataFrame:
    """Churn risk and revenue at risk per group.

    Parameters
    ----------
    risk : pandas.DataFrame
        The output of :func:`customer_risk`: with ``segments=`` (one row per
        customer and segment) to group by ``segment``; without it (one row per
        customer) for every other grouping.
    by : str or sequence of str
        ``"segment"``, ``"tier"``, ``"owner"`` (owner id and name), ``"band"``,
        or column names of ``risk``.

    Returns
    -------
    pandas.DataFrame
        Indexed by the grouping column(s); columns ``customers`` (int64),
        ``p_churn_mean``, ``expected_churners`` (sum of ``p_churn``),
        ``revenue_12m``, ``revenue_at_risk``, ``revenue_at_risk_rate`` (the
        group's revenue at risk / the group's ``revenue_12m``) and
        ``share_of_total_at_risk`` (the group's revenue at risk / that of all
        the frame's customers, each counted once), sorted by
        ``revenue_at_risk`` descending, then by the grouping column(s). By
        tier or owner the shares add up to 1; by segment, a customer in two
        segments counts in both, so overlapping segments' shares may add up to
        more than 1.

    Raises
    ------
    ValidationError
        If a grouping column is missing (e.g. ``segment`` without ``segments=``),
        or if a frame with one row per customer and segment is grouped by
        anything but ``segment``, or lacks ``customer_id``.
    """
    keys = GROUPINGS.get(by, [by]) if isinstance(by, str) else list(by)
    require_columns(risk, ("p_churn", "revenue_12m", "revenue_at_risk"), what="The risk frame")
    if "segment" in risk.columns:
        require_columns(risk, ("customer_id",), what="A risk frame by segment")
    _check_grouping(risk, keys)
    summary = risk.groupby(keys, dropna=False).agg(
        customers=("p_churn", "size"),
        p_churn_mean=("p_churn", "mean"),
        expected_churners=("p_churn", "sum"),
        revenue_12m=("revenue_12m", "sum"),
        revenue_at_risk=("revenue_at_risk", "sum"),
    )
    summary["revenue_at_risk_rate"] = summary["revenue_at_risk"] / summary["revenue_12m"].where(
        summary["revenue_12m"] > 0
    )
    total = _distinct_revenue_at_risk(risk)
    summary["share_of_total_at_risk"] = summary["revenue_at_risk"] / total if total > 0 else np.nan
    summary = summary.astype({"customers": "int64"})
    # Ties in the group's name order, so every engine lists equal groups alike.
    order = summary.reset_index().sort_values(
        ["revenue_at_risk", *keys], ascending=[False, *[True] * len(keys)], kind="stable"
    )
    return summary.iloc[order.index.to_numpy()]


#: The revenue-at-risk figure's title, by the summary's (first) grouping column.
_TITLES = {
    "zh": {
        "segment": "各分群流失风险金额",
        "tier": "各会员等级流失风险金额",
        "owner_id": "各负责人流失风险金额",
        "band": "各风险档流失风险金额",
        None: "流失风险金额",
    },
    "en": {
        "segment": "Revenue at risk by segment",
        "tier": "Revenue at risk by tier",
        "owner_id": "Revenue at risk by account manager",
        "band": "Revenue at risk by risk band",
        None: "Revenue at risk",
    },
}
_TOP = {"zh": "（前{top}）", "en": " (top {top})"}


def _group_name(group: object, levels: Sequence[Hashable], lang: str) -> str:
    """``AM010 / 罗经理`` for an (id, name) group; a missing or empty part is left out.

    The markers of no owner, tier or segment are named in ``lang``.
    """
    parts = group if isinstance(group, tuple) else (group,)
    named = [group_label(level, part, lang) for level, part in zip(levels, parts, strict=True)]
    return " / ".join(str(part) for part in named if not pd.isna(part) and str(part) != "")


def _title(summary: pd.DataFrame, top: int, lang: str) -> str:
    titles = _TITLES[lang]
    title = titles.get(str(summary.index.names[0]), titles[None])
    return title + _TOP[lang].format(top=top) if len(summary) > top else title


def plot_revenue_at_risk(
    summary: pd.DataFrame, *, top: int = 15, lang: str = "en", currency: str = "CNY"
) -> Figure:
    """Horizontal bars of revenue at risk for the ``top`` groups of :func:`revenue_at_risk`.

    Parameters
    ----------
    summary : pandas.DataFrame
        The output of :func:`revenue_at_risk` (at least ``revenue_at_risk``).
    top : int
        How many groups to draw, the largest first; the title says when some are left out.
    lang : str
        ``"en"`` or ``"zh"`` (``settings.language``): labels, and how groups
        without an owner, tier or segment are named.
    currency : str
        Currency code of the amounts (``settings.currency``), shown on the axis by its symbol.

    Raises
    ------
    ConfigError
        If ``lang`` is neither.
    """
    require_columns(summary, ("revenue_at_risk",), what="The revenue-at-risk summary")
    headers = table_headers(lang, currency=currency)
    shown = summary.head(top).iloc[::-1]
    fig, ax = new_figure(7.0, max(3.0, 0.35 * len(shown) + 1.5))
    names = [_group_name(group, shown.index.names, lang) for group in shown.index]
    bars = ax.barh(names, shown["revenue_at_risk"].to_numpy())
    # Each bar's amount at its end: millions on a few ticks are too coarse to read one off.
    ax.bar_label(bars, fmt="{:,.0f}", padding=3, fontsize=8)
    ax.margins(x=0.15)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter("{x:,.0f}")
    ax.set_xlabel(headers["revenue_at_risk"])
    ax.set_title(_title(summary, top, lang))
    return finish(fig, lang)
