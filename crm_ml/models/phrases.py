"""Plain-language phrases for score drivers, in English and Simplified Chinese.

This module holds the phrasing machinery and the templates of multi-feature
topics (recency, tier, complaints, coupons, points, stored value, campaign
contacts); :mod:`crm_ml.models.phrase_templates` maps features to topics and
topics to templates. Each phrase uses the customer's own values, and a
template is marked actionable when a retention team can do something about
it, per value, not per topic (see *Actionable* below).

*Direction.* SHAP contributions are relative to the model's base rate, so a
fact can push a score the way its words argue against: in a churn model whose
customers are mostly long lapsed, a purchase 152 days ago *lowers* churn, and
"no purchase for 152 days, usually every 80" would then be listed as why churn
is low. :class:`PhraseContext` says which way the reasons being phrased push
(``towards_lapse``: True for a churn risk raised or a purchase propensity
lowered, False the other way, None when the model's target is unknown), and a
template whose wording implies a direction either words the fact for that
direction (recency: "last purchase 152 days ago, more recently than most
customers") or declares a :attr:`Template.lean` so that
:mod:`crm_ml.models.reasons` skips it when it reads the other way (no browsing
since the last order, complaints, a downgrade, spending less than before, no
orders or events in a window).

*Actionable* means a retention agent can do something about this fact, for
this customer: a downgrade in the last :data:`RECENT_DOWNGRADE_DAYS` days (a
way back to the tier), complaints in the last 90 days (service recovery),
coupons issued but not used, a points balance or points about to expire, a
stored-value balance, carts abandoned, no account manager. Facts that only
describe the customer are not: a tier that has not changed, an old complaint,
no coupons issued, and campaign contacts, whose rise in churn reflects whom
campaigns target more than an effect, so flagging them would invite "stop
contacting them".

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


#: Up to this many days (as shown, rounded) a last purchase reads "just bought" (刚购买).
#: About a month: the span "just" covers in everyday speech and a post-purchase
#: follow-up, and the shortest usual gap of most repeat buyers; beyond it the day
#: count is stated plainly (最近一次购买在45天前), never as "just".
JUST_BOUGHT_DAYS = 30
#: A downgrade at most this many days ago is actionable: a win-back offer can still
#: restore the tier before the customer settles into the lower one.
RECENT_DOWNGRADE_DAYS = 180
#: Orders from which a mean gap between them is a habit ("usually every N days"),
#: and from which a purchase can be called overdue: one gap between two orders is not.
HABIT_MIN_ORDERS = 3


@dataclass(frozen=True)
class PhraseContext:
    """What phrasing needs besides the features: currency, tier names, direction.

    ``towards_lapse`` says which way the reasons being phrased push the score:
    True towards the lapsed reading (churn risk raised, purchase propensity
    lowered), False towards the active one, None when unknown (the model's
    target was not given). Templates use it so that no phrase argues against
    its own direction.
    """

    currency: str = "CNY"
    tier_names: Mapping[int, str] = field(default_factory=dict)
    towards_lapse: bool | None = None
    #: The mean of each feature over the rows the model was trained on (its
    #: ``feature_means_``): what "more recently than average" is checked against.
    averages: Mapping[str, float] = field(default_factory=dict)

    def more_recent(self, column: str, days: float, lang: str) -> str:
        """``（比平均水平近）`` when ``days`` of ``column`` are fewer than its average.

        Said only past :data:`JUST_BOUGHT_DAYS` days, where the days alone read as
        long: SHAP is relative to the base rate, so in a store of mostly lapsed
        customers 300 days since the last visit can lower a churn risk, and the
        words then say why. Never said without the average to check it against,
        nor when the customer is not below it (the days still lower the risk when
        most customers never bought the category at all).
        """
        average = self.averages.get(column)
        if days <= JUST_BOUGHT_DAYS or average is None or not days < average:
            return ""
        return "（比平均水平近）" if lang == "zh" else ", more recently than average"

    @property
    def symbol(self) -> str:
        """Currency symbol (or the code and a space)."""
        return CURRENCY_SYMBOLS.get(self.currency, f"{self.currency} ")


@dataclass(frozen=True)
class Template:
    """How to phrase one topic, whether it is actionable, and which way its words lean.

    ``actionable`` is a flag for the whole topic or a function of the values
    (getter -> one bool per row). ``lean``, if given, returns per row +1 where
    the words read as lapsing (no browsing since the last order), -1 where they
    read as active, 0 where they do not say; :mod:`crm_ml.models.reasons` does
    not show a reason whose lean is against its direction.
    """

    phrase: Callable[[Getter, str, PhraseContext], list[str]]
    actionable: bool | Callable[[Getter], np.ndarray] = False
    lean: Callable[[Getter], np.ndarray] | None = None

    def actionable_rows(self, get: Getter, size: int) -> np.ndarray:
        """Return the actionable flag of each of ``size`` rows."""
        if callable(self.actionable):
            return np.asarray(self.actionable(get), dtype=bool).reshape(-1)
        return np.full(size, self.actionable, dtype=bool)


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
    # One gap between two orders is no habit: "usually every N days", and so "overdue",
    # need three orders. A frame without orders_lifetime trusts the mean gap.
    orders = get("orders_lifetime")
    habit = bought & ~np.isnan(usual)
    if orders is not None:
        habit &= orders >= HABIT_MIN_ORDERS
    # Overdue compares the unrounded days; the phrase then shows only whole days, so the
    # day count and the usual gap are each phrased once per value shown.
    overdue = habit & (whole_days(days) != 0) & (days >= usual)
    return each_distinct(
        lambda d, o, u, r: _recency_one(d, o, u, r, lang, ctx),
        whole_days(days),
        overdue,
        whole_days(np.where(habit, usual, np.nan)),
        np.where(bought, np.nan, ratio),
    )


def _recency_one(
    d: float, overdue: bool, usual: float, r: float, lang: str, ctx: PhraseContext
) -> str:
    """One customer's recency, worded for the direction it is shown under.

    Towards lapse (churn raised, purchase lowered): "no purchase for N days, usually
    every M" when overdue by the customer's habit, else the plain day count (an
    interval not yet reached would argue the other way). Towards active: "just
    bought" up to :data:`JUST_BOUGHT_DAYS`, the usual interval only when it is not
    yet reached, and past a month "more recently than average" when it is (see
    :meth:`PhraseContext.more_recent`). Direction unknown: the facts, overdue by
    habit or just bought when they are.
    """
    lapse = ctx.towards_lapse
    if not _ok(d):
        return _never_bought(r, lang)
    usually = _usually(usual, lang) if _ok(usual) else ""
    if overdue and lapse is not False:
        return (
            f"已{d:.0f}天未购买" if lang == "zh" else f"no purchase for {_days(d, lang)}"
        ) + usually
    if lapse:
        return _last_purchase(d, lang)
    tail = "" if overdue else usually
    if d <= JUST_BOUGHT_DAYS:
        return _just_bought(d, lang) + tail
    if lapse is False and not tail:
        tail = ctx.more_recent("recency_days", d, lang)
    return _last_purchase(d, lang) + tail


def _never_bought(r: float, lang: str) -> str:
    if _ok(r):
        return (
            f"距上次购买已是平时间隔的{r:.1f}倍"
            if lang == "zh"
            else f"{r:.1f}× the usual time since the last purchase"
        )
    return "从未购买" if lang == "zh" else "has never purchased"


def _just_bought(d: float, lang: str) -> str:
    if lang == "zh":
        return f"{_ago(d, lang)}刚购买"
    return "bought within the last day" if _today(d) else f"last purchase {_days(d, lang)} ago"


def _last_purchase(d: float, lang: str) -> str:
    return f"最近一次购买在{_ago(d, lang)}" if lang == "zh" else f"last purchase {_ago(d, lang)}"


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


# ----------------------------------------------------------------------------- per-value flags


def _sign(reads_lapsed: np.ndarray, reads_active: np.ndarray) -> np.ndarray:
    """Return +1 where the words read as lapsing, -1 where they read as active, else 0."""
    return np.where(reads_lapsed, 1, np.where(reads_active, -1, 0))


def _above_zero(get: Getter, column: str) -> np.ndarray:
    values = _col(get, column, _size(get, column))
    return np.nan_to_num(values, nan=0.0) > 0


def recency_lean(get: Getter) -> np.ndarray:
    """Return +1 where the customer never bought; other recency words follow the direction."""
    size = _size(get, "recency_days", "recency_ratio")
    days, ratio = _col(get, "recency_days", size), _col(get, "recency_ratio", size)
    never = np.isnan(days) & np.isnan(ratio)
    return _sign(never, np.zeros(size, dtype=bool))


def tier_lean(get: Getter) -> np.ndarray:
    """Return +1 for a downgrade (reads as lapsing), -1 for an upgrade, 0 for a tier held."""
    move = _col(get, "last_tier_change_direction", _size(get, "last_tier_change_direction"))
    return _sign(move < 0, move > 0)


def tier_actionable(get: Getter) -> np.ndarray:
    """Flag a downgrade in the last :data:`RECENT_DOWNGRADE_DAYS` days: it can be won back."""
    size = _size(get, "last_tier_change_direction", "days_since_tier_change")
    move = _col(get, "last_tier_change_direction", size)
    days = _col(get, "days_since_tier_change", size)
    return (move < 0) & (days <= RECENT_DOWNGRADE_DAYS)


def complaints_lean(get: Getter) -> np.ndarray:
    """Return +1 where a complaint is on record (reads as lapsing), -1 where none is."""
    size = _size(get, "complaints_90d", "days_since_last_complaint")
    count = _col(get, "complaints_90d", size)
    days = _col(get, "days_since_last_complaint", size)
    complained = (count > 0) | ~np.isnan(days)
    return _sign(complained, ~complained)


def complaints_actionable(get: Getter) -> np.ndarray:
    """Flag complaints in the last 90 days (service recovery); an old one is history."""
    return _above_zero(get, "complaints_90d")


def coupons_actionable(get: Getter) -> np.ndarray:
    """Flag coupons issued in the last 90 days and not all used: a reminder can go out."""
    size = _size(get, "coupons_issued_90d", "coupons_redeemed_90d")
    issued = _col(get, "coupons_issued_90d", size)
    used = np.nan_to_num(_col(get, "coupons_redeemed_90d", size), nan=0.0)
    return issued > used


def points_actionable(get: Getter) -> np.ndarray:
    """Flag a points balance to spend (the phrase names it)."""
    return _above_zero(get, "points_balance")


def points_expiring_actionable(get: Getter) -> np.ndarray:
    """Flag points that expire within 30 days."""
    return _above_zero(get, "points_expiring_30d")


def stored_value_actionable(get: Getter) -> np.ndarray:
    """Flag a stored-value balance to spend (the phrase names it)."""
    return _above_zero(get, "stored_value_balance")
