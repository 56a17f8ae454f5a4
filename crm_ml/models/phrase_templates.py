"""The phrase registry: which features share a topic, and each topic's template.

Features that tell one story share a *topic* (``recency_days``,
``recency_ratio`` and ``interpurchase_mean_days`` all say "no purchase for 95
days, usually every 30"); :mod:`crm_ml.models.reasons` sums their SHAP
contributions per topic. :func:`template_for` finds a topic's template by
name, then by pattern (``orders_<window>``, ``revenue_<window>``,
``revenue_trend_<window>``, ``events_<type>_<window>``, ``affinity_<category>``,
``consent_<channel>_marketing``), else falls back to ``"<feature>: <value>"``.
To phrase a new feature, add an entry to :data:`TEMPLATES` (and to
:data:`TOPIC_OF` if it shares a story with others); ``tests/models/test_phrases.py``
fails on a catalogue feature that falls back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.features.spec import CATEGORY_LABELS, VALUE_LABELS
from crm_ml.models.phrases import (
    Getter,
    PhraseContext,
    Template,
    _ago,
    _campaign,
    _col,
    _complaints,
    _coupons,
    _days,
    _n,
    _ok,
    _pct,
    _points,
    _points_expiring,
    _recency,
    _sign,
    _size,
    _stored_value,
    _tier,
    _today,
    _window,
    complaints_actionable,
    complaints_lean,
    coupons_actionable,
    each_distinct,
    format_value,
    points_actionable,
    points_expiring_actionable,
    recency_lean,
    stored_value_actionable,
    tier_actionable,
    tier_lean,
    whole_days,
)

TOPIC_OF: dict[str, str] = {
    "recency_days": "recency",
    "recency_ratio": "recency",
    "interpurchase_mean_days": "recency",
    "interpurchase_std_days": "recency",
    "tier_level": "tier",
    "days_since_tier_change": "tier",
    "last_tier_change_direction": "tier",
    "complaints_90d": "complaints",
    "days_since_last_complaint": "complaints",
    "coupons_issued_90d": "coupons",
    "coupons_redeemed_90d": "coupons",
    "coupon_redemption_rate": "coupons",
    "points_balance": "points",
    "points_earned_90d": "points",
    "points_redeemed_90d": "points",
    "stored_value_balance": "stored_value",
    "stored_value_spent_90d": "stored_value",
    "campaign_contacts_90d": "campaign",
    "campaign_response_rate": "campaign",
    "days_since_last_contact": "campaign",
}


def topic_of(feature: str) -> str:
    """Return the topic a feature's contribution is pooled into (itself by default)."""
    return TOPIC_OF.get(feature, feature)


#: Which rows of a feature say nothing another topic's phrase does not already say.
Implied = Callable[[Getter], Any]


def implied_topics(feature: str) -> list[tuple[str, Implied]]:
    """Return the topics that already say what ``feature`` says, each with the rows where it does.

    Some facts follow from another topic's phrase for some values only, so they
    are pooled per customer, not per feature: 近180天下单0次 follows from 已511天未购买;
    1095天前最后一次购买数码家电 and 首次购买于500天前 restate the last purchase
    when the day counts are equal; 上次购买后未再浏览 follows from 最近一次线上活动在999天前
    when that activity is older than the last order, and 尚未下单 follows from 从未购买.
    Their contributions join that topic for those customers, so three reasons
    carry three facts. The row sets of one feature do not overlap.
    """
    if re.fullmatch(r"orders_(\d+d|lifetime)", feature):
        return [("recency", _equals_zero(feature))]
    if m := re.fullmatch(r"revenue_(\d+d|lifetime)", feature):
        return [("recency", _equals_zero(f"orders_{m.group(1)}"))]
    if feature == "days_since_first_order" or (
        (m := re.fullmatch(r"days_since_(.+)", feature)) and m.group(1) in CATEGORY_LABELS
    ):
        return [("recency", _same_days_as_last_purchase(feature))]
    if feature == "browse_events_since_last_order":
        return [
            ("days_since_last_event", _no_browsing_after_last_activity),
            ("recency", _never_bought(feature)),
        ]
    return []


def _never_bought(column: str) -> Implied:
    """Rows where ``column`` is missing because the customer never bought (recency missing)."""

    def never(get: Getter) -> Any:
        size = _size(get, column, "recency_days")
        return np.isnan(_col(get, column, size)) & np.isnan(_col(get, "recency_days", size))

    return never


def _equals_zero(column: str) -> Implied:
    return lambda get: _col(get, column, _size(get, column)) == 0


def _same_days_as_last_purchase(column: str) -> Implied:
    def same(get: Getter) -> Any:
        size = _size(get, column, "recency_days")
        return whole_days(_col(get, column, size)) == whole_days(_col(get, "recency_days", size))

    return same


def _no_browsing_after_last_activity(get: Getter) -> Any:
    size = _size(get, "browse_events_since_last_order", "days_since_last_event", "recency_days")
    browsing = _col(get, "browse_events_since_last_order", size)
    last_activity = _col(get, "days_since_last_event", size)
    recency = _col(get, "recency_days", size)
    # No online activity on record, or none since before the last order: no browsing since.
    quiet = np.isnan(last_activity) | (last_activity >= recency)
    return (browsing == 0) & quiet


# ------------------------------------------------------------------------ one-feature templates

_FORMATS: dict[str, Callable[[Any, PhraseContext], str]] = {
    "n": lambda v, ctx: _n(v),
    "pct": lambda v, ctx: _pct(v),
    "money": lambda v, ctx: f"{ctx.symbol}{_n(v)}",
    "value": lambda v, ctx: format_value(v),
}


def _simple(
    column: str,
    en: str,
    zh: str,
    kind: str = "n",
    *,
    actionable: bool | Callable[[Getter], Any] = False,
    labels: Mapping[str, tuple[str, str]] | None = None,
    missing: tuple[str, str] | None = None,
    zero_reads_lapsed: bool = False,
) -> Template:
    """Build a template ``en.format(v=...)`` / ``zh.format(v=...)`` over one column's values.

    ``labels`` maps stored codes to the words shown (English, Chinese), so a
    reason reads 获客渠道：老客推荐 rather than 获客渠道：referral. ``missing``
    (English, Chinese) says what a missing value means (尚未下单, not 客单价：—).
    ``zero_reads_lapsed``: a count of 0 (近180天下单0次) reads as lapsing, so it is
    not shown as a reason the customer looks active.
    """

    def phrase(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
        text, fmt = (zh if lang == "zh" else en), _FORMATS[kind]
        values = _col(get, column, _size(get, column))
        return each_distinct(
            lambda v: (
                text.format(v=fmt(_label(v, labels, lang), ctx))
                if pd.notna(v)
                else _missing(column, v, lang, missing)
            ),
            values,
        )

    lean = _zero_lean(column) if zero_reads_lapsed else None
    return Template(phrase, actionable, lean)


def _zero_lean(column: str) -> Callable[[Getter], Any]:
    def lean(get: Getter) -> Any:
        values = _col(get, column, _size(get, column))
        return _sign(values == 0, np.zeros(values.shape, dtype=bool))

    return lean


def _positive(column: str) -> Callable[[Getter], Any]:
    """Actionable where ``column`` is above 0 (carts abandoned)."""
    return lambda get: np.nan_to_num(_col(get, column, _size(get, column)), nan=0.0) > 0


def _missing(column: str, value: Any, lang: str, missing: tuple[str, str] | None) -> str:
    if missing is None:
        return _generic_one(column, value, lang)
    return missing[1] if lang == "zh" else missing[0]


def _since(
    column: str, en: str, zh: str, missing: tuple[str, str], *, recency: bool = False
) -> Template:
    """Build a days-ago template: ``{ago}`` is 45天前 / "45 days ago", or 1天内.

    ``recency``: the days measure how long the customer has been away, so a day
    count shown as a reason the customer looks active says when it is more recent
    than the average customer's (see :meth:`PhraseContext.more_recent`).
    """

    def phrase(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
        text = zh if lang == "zh" else en
        active = recency and ctx.towards_lapse is False
        return each_distinct(
            lambda v: (
                text.format(ago=_ago(v, lang))
                + (ctx.more_recent(column, v, lang) if active else "")
                if _ok(v)
                else _missing(column, v, lang, missing)
            ),
            whole_days(_col(get, column, _size(get, column))),
        )

    return Template(phrase)


def _revenue_trend(column: str, days: str) -> Template:
    """``近90天比前90天少消费¥8,000``: the sign says more or less, the amount is unsigned."""

    def one(v: float, lang: str, ctx: PhraseContext) -> str:
        if not _ok(v):
            return _generic_one(column, v, lang)
        amount, same = f"{ctx.symbol}{_n(abs(v))}", round(v) == 0  # ¥0.40 more reads ¥0
        if lang == "zh":
            if same:
                return f"近{days}天消费与前{days}天持平"
            return f"近{days}天比前{days}天{'多' if v > 0 else '少'}消费{amount}"
        if same:
            return f"spent as much in the last {days} days as in the {days} days before"
        more = "more" if v > 0 else "less"
        return f"spent {amount} {more} in the last {days} days than in the {days} days before"

    def phrase(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
        return each_distinct(lambda v: one(v, lang, ctx), _col(get, column, _size(get, column)))

    def lean(get: Getter) -> Any:
        # Spending less than before reads as lapsing, more as active; as the phrase rounds.
        shown = np.round(_col(get, column, _size(get, column)))
        return _sign(shown < 0, shown > 0)

    return Template(phrase, lean=lean)


def _label(value: Any, labels: Mapping[str, tuple[str, str]] | None, lang: str) -> Any:
    if labels is None or str(value) not in labels:
        return value
    en, zh = labels[str(value)]
    return zh if lang == "zh" else en


def _tenure(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    def one(d: float) -> str:
        if not _ok(d):
            return "成为客户时间未知" if lang == "zh" else "customer since an unknown date"
        if _today(d):
            return "1天内成为客户" if lang == "zh" else "became a customer within the last day"
        if d >= 365:
            return (
                f"成为客户{d / 365:.1f}年" if lang == "zh" else f"customer for {d / 365:.1f} years"
            )
        return f"成为客户{d:.0f}天" if lang == "zh" else f"customer for {_days(d, lang)}"

    return each_distinct(one, _col(get, "tenure_days", _size(get, "tenure_days")))


def _flag(
    column: str,
    en: tuple[str, str],
    zh: tuple[str, str],
    *,
    actionable: bool | Callable[[Getter], Any] = False,
) -> Template:
    """Build a yes/no template: ``(text if true, text if false)`` per language."""

    def phrase(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
        yes, no = zh if lang == "zh" else en
        values = _col(get, column, _size(get, column))
        return each_distinct(
            lambda v: (yes if float(v) > 0 else no) if _ok(v) else _generic_one(column, v, lang),
            values,
        )

    return Template(phrase, actionable)


def _category_recency(category: str) -> Template:
    """``last bought beauty 45 days ago`` / ``45天前最后一次购买美妆``; never bought is said so."""
    column, zh = f"days_since_{category}", CATEGORY_LABELS[category]
    en = category.replace("_", " ")

    def phrase(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
        values = whole_days(_col(get, column, _size(get, column)))
        active = ctx.towards_lapse is False

        def one(v: float) -> str:
            if not _ok(v):
                return f"从未购买{zh}" if lang == "zh" else f"never bought {en}"
            more = ctx.more_recent(column, v, lang) if active else ""
            if lang == "zh":
                return f"{_ago(v, lang)}最后一次购买{zh}{more}"
            return f"last bought {en} {_ago(v, lang)}{more}"

        return each_distinct(one, values)

    return Template(phrase)


def _browsing_since_order(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
    """``3 browsing events since the last order`` / ``上次购买后浏览3次``; none, or no order."""
    column = "browse_events_since_last_order"

    def one(v: float) -> str:
        if not _ok(v):
            return "尚未下单" if lang == "zh" else "no order yet"
        if v == 0:
            return "上次购买后未再浏览" if lang == "zh" else "no browsing since the last order"
        return (
            f"上次购买后浏览{_n(v)}次"
            if lang == "zh"
            else f"{_n(v)} browsing events since the last order"
        )

    return each_distinct(one, _col(get, column, _size(get, column)))


def _browsing_lean(get: Getter) -> Any:
    """No browsing since the last order reads as lapsing; browsing since, as active."""
    values = _col(
        get, "browse_events_since_last_order", _size(get, "browse_events_since_last_order")
    )
    return _sign(values == 0, values > 0)


#: What a missing value means (English, Chinese): the fills of the features catalogue.
_NO_ORDER = ("no orders yet", "尚未下单")
_NO_ITEMS = ("no item purchases on record", "尚无商品购买记录")

TEMPLATES: dict[str, Template] = {
    "recency": Template(_recency, lean=recency_lean),
    "tier": Template(_tier, tier_actionable, tier_lean),
    "complaints": Template(_complaints, complaints_actionable, complaints_lean),
    "coupons": Template(_coupons, coupons_actionable),
    "points": Template(_points, points_actionable),
    "points_expiring_30d": Template(_points_expiring, points_expiring_actionable),
    "stored_value": Template(_stored_value, stored_value_actionable),
    # Contacts describe whom campaigns target: "contacted once" is no lever (F11).
    "campaign": Template(_campaign),
    "tenure_days": Template(_tenure),
    "avg_order_value": _simple(
        "avg_order_value", "average order {v}", "客单价{v}", "money", missing=_NO_ORDER
    ),
    "max_basket_value": _simple(
        "max_basket_value", "largest basket {v}", "最大单笔消费{v}", "money", missing=_NO_ORDER
    ),
    "refund_rate": _simple(
        "refund_rate", "{v} of spend refunded", "退款占消费金额{v}", "pct", missing=_NO_ITEMS
    ),
    "discount_share": _simple(
        "discount_share",
        "{v} of spend on discount",
        "折扣消费占比{v}",
        "pct",
        missing=("no spending on record", "尚无消费记录"),
    ),
    "categories_distinct": _simple(
        "categories_distinct", "buys in {v} categories", "购买过{v}个品类"
    ),
    "top_category_share": _simple(
        "top_category_share",
        "{v} of spend in one category",
        "最常购品类占消费{v}",
        "pct",
        missing=_NO_ITEMS,
    ),
    "online_share": _simple(
        "online_share", "{v} of orders online", "线上订单占比{v}", "pct", missing=_NO_ORDER
    ),
    "stores_distinct": _simple("stores_distinct", "shops at {v} stores", "在{v}家门店购物"),
    "cart_abandonment_rate_30d": _simple(
        "cart_abandonment_rate_30d",
        "abandoned {v} of carts in the last 30 days",
        "近30天购物车放弃率{v}",
        "pct",
        actionable=_positive("cart_abandonment_rate_30d"),
        missing=("no add-to-carts in the last 30 days", "近30天未加购"),
    ),
    "searches_30d": _simple("searches_30d", "{v} searches in the last 30 days", "近30天搜索{v}次"),
    "feedback_90d": _simple(
        "feedback_90d", "{v} feedback messages in the last 90 days", "近90天反馈{v}次"
    ),
    "browse_events_since_last_order": Template(_browsing_since_order, lean=_browsing_lean),
    "days_since_last_event": _since(
        "days_since_last_event",
        "last online activity {ago}",
        "最近一次线上活动在{ago}",  # browsing, searches, carts: not orders
        ("no online activity on record", "无线上活动记录"),
        recency=True,
    ),
    "days_since_last_feedback": _since(
        "days_since_last_feedback",
        "last feedback {ago}",
        "最近一次反馈在{ago}",
        ("no feedback on record", "无反馈记录"),
    ),
    "days_since_first_order": _since(
        "days_since_first_order",
        "first purchase {ago}",
        "首次购买于{ago}",
        ("has never purchased", "从未购买"),
    ),
    "age_band": _simple(
        "age_band", "age {v}", "年龄段：{v}", "value", labels=VALUE_LABELS["age_band"]
    ),
    "gender": _simple("gender", "gender {v}", "性别：{v}", "value", labels=VALUE_LABELS["gender"]),
    "city_tier": _simple(
        "city_tier",
        "city tier {v}",
        "城市等级{v}",
        "value",
        missing=("city tier unknown", "城市等级未知"),
    ),
    "acquisition_channel": _simple(
        "acquisition_channel",
        "acquired via {v}",
        "获客渠道：{v}",
        "value",
        labels=VALUE_LABELS["acquisition_channel"],
    ),
    "is_member": _flag(
        "is_member", ("a loyalty member", "not a loyalty member"), ("会员", "非会员")
    ),
    "has_owner": _flag(
        "has_owner",
        ("has an account manager", "no account manager"),
        ("有专属顾问", "无专属顾问"),
        # Assigning a manager is the lever; having one is not.
        actionable=lambda get: _col(get, "has_owner", _size(get, "has_owner")) == 0,
    ),
}

_EVENT_NAMES = {
    "page_view": ("page views", "浏览页面"),
    "product_view": ("product views", "浏览商品"),
    "search": ("searches", "搜索"),
    "add_to_cart": ("add-to-carts", "加购"),
    "feedback": ("feedback messages", "反馈"),
    "complaint": ("complaints", "投诉"),
}
_CHANNEL_NAMES = {
    "sms": ("SMS", "短信"),
    "email": ("email", "邮件"),
    "wechat": ("WeChat", "微信"),
    "phone": ("phone", "电话"),
    "app_push": ("app push", "App推送"),
}


def _pattern_template(feature: str) -> Template | None:
    if m := re.fullmatch(r"revenue_trend_(\d+)d", feature):
        return _revenue_trend(feature, m.group(1))
    if m := re.fullmatch(r"orders_(\d+d|lifetime)", feature):
        w = m.group(1)
        return _simple(
            feature,
            "{v} orders " + _window(w, "en"),
            _window(w, "zh") + "下单{v}次",
            zero_reads_lapsed=True,
        )
    if m := re.fullmatch(r"revenue_(\d+d|lifetime)", feature):
        w = m.group(1)
        return _simple(
            feature, "spent {v} " + _window(w, "en"), _window(w, "zh") + "消费{v}", "money"
        )
    if m := re.fullmatch(r"events_(\w+?)_(\d+d)", feature):
        en, zh = _EVENT_NAMES.get(m.group(1), (m.group(1).replace("_", " "), m.group(1)))
        w = m.group(2)
        return _simple(
            feature,
            "{v} " + en + " " + _window(w, "en"),
            _window(w, "zh") + zh + "{v}次",
            zero_reads_lapsed=True,
        )
    if m := re.fullmatch(r"affinity_(.+)", feature):
        cat, zh = m.group(1), CATEGORY_LABELS.get(m.group(1), m.group(1))
        # The category's share of the customer's spend: 美妆消费占比50%, not 对美妆的偏好：0.50.
        en = cat.replace("_", " ")
        return _simple(
            feature, en + " share of spend: {v}", zh + "消费占比{v}", "pct", missing=_NO_ITEMS
        )
    if (m := re.fullmatch(r"days_since_(.+)", feature)) and m.group(1) in CATEGORY_LABELS:
        return _category_recency(m.group(1))
    if m := re.fullmatch(r"consent_(\w+)_marketing", feature):
        en, zh = _CHANNEL_NAMES.get(m.group(1), (m.group(1), m.group(1)))
        return _flag(
            feature,
            (f"agreed to {en} marketing", f"no consent for {en} marketing"),
            (f"已同意{zh}营销", f"未同意{zh}营销"),
        )
    return None


def _generic_one(feature: str, value: Any, lang: str) -> str:
    return (
        f"{feature}：{format_value(value)}"
        if lang == "zh"
        else f"{feature.replace('_', ' ')}: {format_value(value)}"
    )


def _generic(feature: str) -> Template:
    def phrase(get: Getter, lang: str, ctx: PhraseContext) -> list[str]:
        values = get(feature)
        if values is None:
            return []
        return each_distinct(lambda v: _generic_one(feature, v, lang), values)

    return Template(phrase)


def template_for(topic: str) -> Template:
    """Return the template of a topic: by name, then by pattern, else the generic one."""
    return TEMPLATES.get(topic) or _pattern_template(topic) or _generic(topic)
