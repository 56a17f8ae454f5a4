"""Plain-language phrases for score drivers, in English and Simplified Chinese.

This module holds the phrasing machinery and the templates of multi-feature
topics (recency, tier, complaints, coupons, points, stored value, campaign
contacts); :mod:`crm_ml.models.phrase_templates` maps features to topics and
topics to templates. Each phrase uses the customer's own values, and a
template is marked actionable when a retention team can do something about
it (expiring points, unredeemed coupons, complaints, a recent downgrade).

A template takes a getter (column name -> the values for the rows being
phrased, or ``None`` if the frame lacks that column), the language and a
:class:`PhraseContext`, and returns one string per row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.config import CURRENCY_SYMBOLS

Getter = Callable[[str], np.ndarray | None]
LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class PhraseContext:
    """What phrasing needs besides the features: currency and tier names."""

    currency: str = "CNY"
    tier_names: Mapping[int, str] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        """Currency symbol (or the code and a space)."""
        return CURRENCY_SYMBOLS.get(self.currency, f"{self.currency} ")


@dataclass(frozen=True)
class Template:
    """How to phrase one topic, and whether it is actionable."""

    phrase: Callable[[Getter, str, PhraseContext], list[str]]
    actionable: bool = False


# ----------------------------------------------------------------------------- formatting


def _ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _n(v: float) -> str:
    return f"{v:,.0f}"


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def _days(v: float, lang: str) -> str:
    if lang == "zh":
        return f"{v:.0f}天"
    return "1 day" if round(v) == 1 else f"{v:.0f} days"


def _today(v: float) -> bool:
    """Whether a day count reads as 0, rounded as every phrase writes days (``{v:.0f}``)."""
    return round(v) == 0


def _ago(v: float, lang: str) -> str:
    """``45天前`` / "45 days ago"; under half a day ``1天内`` / "within the last day".

    Never 0天前; and not "today": as_of is midnight, so today is the day after.
    """
    if _today(v):
        return "1天内" if lang == "zh" else "within the last day"
    return f"{v:.0f}天前" if lang == "zh" else f"{_days(v, lang)} ago"


def _times(v: float, one: str, many: str) -> str:
    return f"{v:,.0f} {one if round(v) == 1 else many}"


def _window(name: str, lang: str) -> str:
    """``90d`` -> "in the last 90 days" / "近90天"; ``lifetime`` -> "in total" / "累计"."""
    if name == "lifetime":
        return "累计" if lang == "zh" else "in total"
    days = name.rstrip("d")
    return f"近{days}天" if lang == "zh" else f"in the last {days} days"


def _col(get: Getter, name: str, size: int) -> np.ndarray:
    values = get(name)
    return np.full(size, np.nan) if values is None else values


def _size(get: Getter, *names: str) -> int:
    for name in names:
        values = get(name)
        if values is not None:
            return len(values)
    return 0


def each_distinct(phrase_one: Callable[..., str], *columns: np.ndarray) -> list[str]:
    """Return ``phrase_one(*row)`` for every row of ``columns``, phrasing each distinct row once.

    Customers share most values (order counts, days, labels), and formatting
    strings is the slow part of phrasing reasons for a million customers.
    """
    if not columns or len(columns[0]) == 0:
        return []
    codes = [pd.factorize(c, use_na_sentinel=False)[0] for c in columns]
    key = codes[0] if len(codes) == 1 else _row_codes(np.column_stack(codes))
    _, first = np.unique(key, return_index=True)
    words = np.array([phrase_one(*(c[i] for c in columns)) for i in first], dtype=object)
    return words[key].tolist()


def _row_codes(codes: np.ndarray) -> np.ndarray:
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1)


def format_value(v: Any) -> str:
    """Format any feature value for a generic phrase."""
    if not _ok(v):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()):
        return f"{v:,.0f}"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.2f}"
    return str(v)


# ----------------------------------------------------------------------------- topic templates


def whole_days(values: np.ndarray) -> np.ndarray:
    """Round day counts as phrases show them (``{v:.0f}``: half to even, like ``np.round``).

    Days since an event carry fractions of a day; a phrase shows whole days, so
    rounding first lets :func:`each_distinct` phrase each shown value once.
    """
    return np.round(values)


def _recency(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "recency_days", "recency_ratio", "interpurchase_mean_days")
    days, usual = _col(get, "recency_days", size), _col(get, "interpurchase_mean_days", size)
    ratio = _col(get, "recency_ratio", size)
    bought = ~np.isnan(days)
    # Overdue compares the unrounded days; the phrase then shows only whole days, so the
    # head (days) and the tail (usual gap) are each phrased once per value shown.
    due = np.where(np.isnan(usual), days >= 30, days >= usual)
    overdue = bought & (whole_days(days) != 0) & due
    heads = each_distinct(
        lambda d, o, r: _recency_head(d, o, r, lang),
        whole_days(days),
        overdue,
        np.where(bought, np.nan, ratio),
    )
    # One gap between two orders is no habit: "usually every N days" needs three orders.
    orders = get("orders_lifetime")
    habit = bought if orders is None else bought & (orders >= 3)
    tails = each_distinct(
        lambda u: _usually(u, lang) if _ok(u) else "", whole_days(np.where(habit, usual, np.nan))
    )
    return list(np.asarray(heads, dtype=object) + np.asarray(tails, dtype=object))


def _recency_head(d: float, overdue: bool, r: float, lang: str) -> str:
    if not _ok(d):
        if _ok(r):
            return (
                f"距上次购买已是平时间隔的{r:.1f}倍"
                if lang == "zh"
                else f"{r:.1f}× the usual time since the last purchase"
            )
        return "从未购买" if lang == "zh" else "has never purchased"
    if lang == "zh":
        return f"已{d:.0f}天未购买" if overdue else f"{_ago(d, lang)}刚购买"
    recent = "bought within the last day" if _today(d) else f"last purchase {_days(d, lang)} ago"
    return f"no purchase for {_days(d, lang)}" if overdue else recent


def _usually(u: float, lang: str) -> str:
    if _today(u):  # a mean gap under half a day: several orders a day, not "every 0 days"
        return "，平时一天内多次购买" if lang == "zh" else ", usually several times a day"
    return f"，平时约每{u:.0f}天购买一次" if lang == "zh" else f", usually every {u:.0f}"


def _tier(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "tier_level", "days_since_tier_change", "last_tier_change_direction")
    level = _col(get, "tier_level", size)
    days = _col(get, "days_since_tier_change", size)
    move = _col(get, "last_tier_change_direction", size)
    # Without a tier change before as_of, tier_level is 0 like the base tier's: only the
    # missing days_since_tier_change tells a customer who never had a tier.
    knows_days = get("days_since_tier_change") is not None
    return each_distinct(
        lambda lv, d, mv: _tier_one(lv, d, mv, lang, ctx, knows_days), level, days, move
    )


def _tier_name(level: float, ctx: PhraseContext) -> str | None:
    return ctx.tier_names.get(int(level)) if _ok(level) else None


def _tier_one(
    level: float, d: float, move: float, lang: str, ctx: PhraseContext, knows_days: bool
) -> str:
    zh = lang == "zh"
    if not _ok(level) or (knows_days and not _ok(d)):  # tier_level is missing without a tier
        return "暂无会员等级" if zh else "no tier yet"
    ago = (_ago(d, lang) if zh else f" {_ago(d, lang)}") if _ok(d) else ""
    if _ok(move) and move < 0:
        # Tier moves are one step, so the previous tier is one level up.
        prev = _tier_name(level + 1, ctx) if _ok(level) else None
        if zh:
            return f"{ago}从{prev}降级" if prev else f"{ago}等级下降"
        return f"downgraded from {prev}{ago}" if prev else f"downgraded a tier{ago}"
    if _ok(move) and move > 0:
        name = _tier_name(level, ctx)
        if zh:
            return f"{ago}升级为{name}" if name else f"{ago}等级提升"
        return f"upgraded to {name}{ago}" if name else f"upgraded a tier{ago}"
    name = _tier_name(level, ctx) or (f"{level:.0f}" if _ok(level) else "—")
    if zh:
        return f"当前等级{name}" + (_unchanged(d, lang) if _ok(d) else "")
    return f"tier {name}" + (_unchanged(d, lang) if _ok(d) else "")


def _unchanged(d: float, lang: str) -> str:
    if _today(d):
        return "，1天内刚变更" if lang == "zh" else ", changed within the last day"
    return f"，已{d:.0f}天未变" if lang == "zh" else f", unchanged for {_days(d, lang)}"


def _complaints(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "complaints_90d", "days_since_last_complaint")
    count, days = _col(get, "complaints_90d", size), _col(get, "days_since_last_complaint", size)
    return each_distinct(lambda c, d: _complaints_one(c, d, lang), count, days)


def _complaints_one(c: float, d: float, lang: str) -> str:
    zh = lang == "zh"
    if _ok(c) and c > 0:
        last = (
            (f"（最近一次在{_ago(d, lang)}）" if zh else f", the last {_ago(d, lang)}")
            if _ok(d)
            else ""
        )
        return (
            f"近90天投诉{c:.0f}次"
            if zh
            else f"{_times(c, 'complaint', 'complaints')} in the last 90 days"
        ) + last
    if _ok(d):
        return f"最近一次投诉在{_ago(d, lang)}" if zh else f"last complaint {_ago(d, lang)}"
    if _ok(c):
        return "近90天无投诉" if zh else "no complaints in the last 90 days"
    return "无投诉记录" if zh else "no complaints on record"


def _coupons(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "coupons_issued_90d", "coupons_redeemed_90d", "coupon_redemption_rate")
    issued = _col(get, "coupons_issued_90d", size)
    used = _col(get, "coupons_redeemed_90d", size)
    rate = _col(get, "coupon_redemption_rate", size)
    return each_distinct(lambda i, u, r: _coupons_one(i, u, r, lang), issued, used, rate)


def _coupons_one(i: float, u: float, r: float, lang: str) -> str:
    zh = lang == "zh"
    if _ok(i) and i > 0 and _ok(u):
        return (
            f"近90天领取{i:.0f}张优惠券，使用{u:.0f}张"
            if zh
            else f"redeemed {u:.0f} of {_times(i, 'coupon', 'coupons')} in the last 90 days"
        )
    if _ok(i) and i == 0:
        return "近90天未发放优惠券" if zh else "no coupons issued in the last 90 days"
    if _ok(r):
        return f"优惠券核销率{_pct(r)}" if zh else f"coupon redemption rate {_pct(r)}"
    return "无优惠券记录" if zh else "no coupon history"


def _points(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "points_balance", "points_earned_90d", "points_redeemed_90d")
    bal, redeemed = _col(get, "points_balance", size), _col(get, "points_redeemed_90d", size)
    earned = _col(get, "points_earned_90d", size)
    return each_distinct(lambda b, e, r: _points_one(b, e, r, lang), bal, earned, redeemed)


def _points_one(b: float, e: float, r: float, lang: str) -> str:
    zh = lang == "zh"
    none_redeemed = _ok(r) and r == 0
    if _ok(b):
        head = f"积分余额{_n(b)}" if zh else f"{_n(b)} points unused"
        tail = (
            ("，近90天未兑换" if zh else ", none redeemed in the last 90 days")
            if none_redeemed
            else ""
        )
        return head + tail
    if _ok(e):
        return f"近90天获得{_n(e)}积分" if zh else f"earned {_n(e)} points in the last 90 days"
    return "近90天未兑换积分" if zh else "no points redeemed in the last 90 days"


def _points_expiring(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    values = _col(get, "points_expiring_30d", _size(get, "points_expiring_30d"))
    if lang == "zh":
        return each_distinct(
            lambda v: f"30天内将有{_n(v)}积分过期" if _ok(v) else "近期无积分过期", values
        )
    return each_distinct(
        lambda v: f"{_n(v)} points expire within 30 days" if _ok(v) else "no points expiring soon",
        values,
    )


def _stored_value(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "stored_value_balance", "stored_value_spent_90d")
    bal, spent = _col(get, "stored_value_balance", size), _col(get, "stored_value_spent_90d", size)
    s, zh = ctx.symbol, lang == "zh"

    def one(b: float, sp: float) -> str:
        if _ok(b):
            return f"储值余额{s}{_n(b)}" if zh else f"{s}{_n(b)} stored value unused"
        return (
            f"近90天储值消费{s}{_n(sp)}"
            if zh
            else f"spent {s}{_n(sp)} of stored value in the last 90 days"
        )

    return each_distinct(one, bal, spent)


def _campaign(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    size = _size(get, "campaign_contacts_90d", "campaign_response_rate", "days_since_last_contact")
    n = _col(get, "campaign_contacts_90d", size)
    rate, days = (
        _col(get, "campaign_response_rate", size),
        _col(get, "days_since_last_contact", size),
    )
    return each_distinct(lambda c, r, d: _campaign_one(c, r, d, lang), n, rate, days)


def _campaign_one(c: float, r: float, d: float, lang: str) -> str:
    zh = lang == "zh"
    if _ok(c) and c > 0:
        # The rate is over every campaign ever received, not these contacts: say so.
        rate = (
            (f"（历来响应率{_pct(r)}）" if zh else f" (all-time response rate {_pct(r)})")
            if _ok(r)
            else ""
        )
        return (
            f"近90天被营销触达{c:.0f}次"
            if zh
            else f"contacted {_times(c, 'time', 'times')} in the last 90 days"
        ) + rate
    if _ok(d):
        return f"最近一次营销触达在{_ago(d, lang)}" if zh else f"last contacted {_ago(d, lang)}"
    if _ok(r):
        return f"历来营销响应率{_pct(r)}" if zh else f"all-time campaign response rate {_pct(r)}"
    return "近90天未被营销触达" if zh else "not contacted in the last 90 days"
