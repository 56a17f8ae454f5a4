"""The built-in tag library: lifecycle, value, RFM, risk, propensity, preference, assets.

Every tag is plain data (:class:`~crm_ml.tags.definitions.TagDefinition`); the
parametrised ones come from :data:`TAG_TEMPLATES`, so a retailer can make its
own variant (``TAG_TEMPLATES["dormant"].instantiate(days=120)``).

Relative thresholds (top 20 %, quintiles, medians) are ranks among the
customers evaluated at ``as_of`` — ``percentile(x, among)`` and
``quintile(x, among)`` — so they follow the base as it grows.
"""

from __future__ import annotations

from crm_ml.rules import CATEGORIES
from crm_ml.store.connection import Store
from crm_ml.tags.definitions import (
    TagDefinition,
    TagTemplate,
    TemplateParam,
    category_param,
    save_tag_definitions,
)

_BUYERS_12M = "orders_365d > 0"
_AOV_HIGH = f"percentile(avg_order_value, {_BUYERS_12M}) > 0.5"
_FREQ_HIGH = f"percentile(orders_365d, {_BUYERS_12M}) > 0.5"

# RFM: R from recency (recent = 5), F and M from lifetime orders and revenue, among buyers.
_R = "quintile(-recency_days, orders_lifetime > 0)"
_FM = (
    "(quintile(orders_lifetime, orders_lifetime > 0)"
    " + quintile(revenue_lifetime, orders_lifetime > 0)) / 2"
)

#: Parametrised tag families.
TAG_TEMPLATES: dict[str, TagTemplate] = {
    "new_customer": TagTemplate(
        "new_customer",
        "新客",
        # From the first order, not registration (tenure_days): members often sign up
        # in store or in the mini program long before they first buy.
        "days_since_first_order <= {days}",
        {"days": TemplateParam("int", 90, 1, 3650)},
        category="lifecycle",
        description="First purchase within the last {days} days.",
    ),
    "dormant": TagTemplate(
        "dormant",
        "沉睡客户",
        "orders_lifetime > 0 and recency_days > {days}",
        {"days": TemplateParam("int", 180, 1, 3650)},
        category="lifecycle",
        description="Has bought before, but not in the last {days} days.",
    ),
    "category_affinity": TagTemplate(
        "likes_{category}",
        "{category_label}偏好",
        "affinity_{category} >= {min_share}",
        {"category": category_param(), "min_share": TemplateParam("float", 0.4, 0.0, 1.0)},
        category="preference",
        description="At least {min_share} of spend is in {category}.",
    ),
    "recent_category_buyer": TagTemplate(
        "recent_{category}_buyer_{days}d",
        "近{days}天购买过{category_label}",
        "days_since_{category} <= {days}",
        {"category": category_param(), "days": TemplateParam("int", 30, 1, 3650)},
        category="preference",
        description="Ordered something in {category} in the last {days} days.",
    ),
    "points_expiring": TagTemplate(
        "points_expiring",
        "积分即将过期",
        "points_expiring_30d >= {min_points}",
        {"min_points": TemplateParam("int", 100, 1, 10**9)},
        category="assets",
        description="At least {min_points} points expire within 30 days.",
    ),
    "discount_sensitive": TagTemplate(
        "discount_sensitive",
        "促销敏感",
        "orders_365d >= 2 and discount_share >= {min_share}",
        {"min_share": TemplateParam("float", 0.3, 0.0, 1.0)},
        category="preference",
        description="Repeat buyer in the last 12 months with at least {min_share} of spend "
        "discounted.",
    ),
    "tier_downgrade_risk": TagTemplate(
        "tier_downgrade_risk",
        "降级风险",
        "tier_level >= {min_level} and orders_90d == 0",
        {"min_level": TemplateParam("int", 2, 1, 20)},
        category="assets",
        description="In tier level {min_level} or above with no order in 90 days: the rolling "
        "12-month spend that keeps the tier is falling.",
    ),
    "churn_risk_high": TagTemplate(
        "churn_risk_high",
        "流失风险高",
        # At risk means still a customer: one gone for longer than the dormant tag's
        # {active_days} days has churned already (p_churn near 1), and is dormant instead.
        "p_churn >= {high} and recency_days <= {active_days}",
        {
            "high": TemplateParam("float", 0.6, 0.0, 1.0),
            "active_days": TemplateParam("int", 180, 1, 3650),
        },
        category="risk",
        kind="model",
        description="Churn probability at least {high} (model crm-churn), and a purchase in "
        "the last {active_days} days: about to lapse, not lapsed long ago (tag dormant).",
    ),
    "likely_to_buy": TagTemplate(
        "likely_to_buy",
        "高购买意向",
        "p_purchase >= {threshold}",
        {"threshold": TemplateParam("float", 0.5, 0.0, 1.0)},
        category="propensity",
        kind="model",
        description="Purchase probability at least {threshold} (crm-propensity).",
    ),
}


def _fixed() -> list[TagDefinition]:
    quadrants = [
        ("a", "A类: 高客单高频", f"{_AOV_HIGH} and {_FREQ_HIGH}"),
        ("b", "B类: 高客单低频", f"{_AOV_HIGH} and not {_FREQ_HIGH}"),
        ("c", "C类: 低客单高频", f"not {_AOV_HIGH} and {_FREQ_HIGH}"),
        ("d", "D类: 低客单低频", f"{_BUYERS_12M} and not {_AOV_HIGH} and not {_FREQ_HIGH}"),
        ("e", "E类: 12个月无消费", "orders_365d == 0"),
    ]
    tags = [
        TagDefinition(
            "repeat_customer",
            "复购客户",
            "lifecycle",
            rule="orders_lifetime >= 2",
            description="Two or more orders ever.",
        ),
        TagDefinition(
            "high_value",
            "高价值客户",
            "value",
            rule=f"percentile(revenue_365d, {_BUYERS_12M}) > 0.8",
            description="Top 20% of 12-month buyers by 12-month revenue (the 80/20 rule).",
        ),
        TagDefinition(
            "churn_risk_medium",
            "流失风险中",
            "risk",
            "model",
            rule="p_churn >= 0.3 and p_churn < 0.6",
            description="0.3 <= p_churn < 0.6.",
        ),
        TagDefinition(
            "churn_risk_low",
            "流失风险低",
            "risk",
            "model",
            rule="p_churn < 0.3",
            description="p_churn below 0.3.",
        ),
    ]
    tags += [
        TagDefinition(
            f"value_quadrant_{key}",
            label,
            "value_quadrant",
            rule=rule,
            description="Value quadrant by average order value x 12-month purchase "
            "frequency, split at the median of 12-month buyers; E has no purchase "
            "in 12 months.",
        )
        for key, label, rule in quadrants
    ]
    return tags + _rfm()


def _rfm() -> list[TagDefinition]:
    segments = [
        ("champions", "重要价值客户", f"{_R} >= 4 and {_FM} >= 4"),
        ("loyal", "忠诚客户", f"{_R} >= 3 and {_FM} >= 3 and not ({_R} >= 4 and {_FM} >= 4)"),
        ("potential", "潜力客户", f"{_R} >= 4 and {_FM} < 3"),
        ("need_attention", "需要关注", f"{_R} == 3 and {_FM} < 3"),
        ("at_risk", "重要挽留客户", f"{_R} <= 2 and {_FM} >= 3"),
        ("hibernating", "沉睡客户(RFM)", f"{_R} == 2 and {_FM} < 3"),
        ("lost", "流失客户", f"{_R} == 1 and {_FM} < 3"),
    ]
    return [
        TagDefinition(
            f"rfm_{key}",
            label,
            "rfm",
            rule=rule,
            description="RFM segment: recency quintile (5 = most recent) and the mean "
            "of frequency and monetary quintiles, among customers who ever bought.",
        )
        for key, label, rule in segments
    ]


def builtin_tags() -> list[TagDefinition]:
    """Return the built-in library, templates at their default parameters included.

    Returns
    -------
    list of TagDefinition
        New/repeat customers, high value, value quadrants A–E, RFM segments,
        dormant, churn risk high/medium/low, likely to buy, discount-sensitive,
        category affinity for every category, points expiring, tier-downgrade risk.
    """
    templated = [
        t.instantiate()
        for key, t in TAG_TEMPLATES.items()
        if key not in ("category_affinity", "recent_category_buyer")
    ]
    affinity = [TAG_TEMPLATES["category_affinity"].instantiate(category=c) for c in CATEGORIES]
    return templated + _fixed() + affinity


def install_library(store: Store) -> list[TagDefinition]:
    """Save the built-in library into the store (versions bump only where rules changed).

    Returns
    -------
    list of TagDefinition
        The stored definitions.
    """
    return save_tag_definitions(store, builtin_tags())
