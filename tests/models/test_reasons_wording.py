"""Reasons never argue against their own direction, say each fact once, and flag levers only.

From the data-scientist review: F3 (recency worded the wrong way round), F10 (three
reasons restating one fact), F11 (actionable flags on facts no agent can act on).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.phrases import PhraseContext
from crm_ml.models.reasons import explain, reasons_frame

IDS = pd.Index(["LOW", "HIGH"], name="customer_id")
#: The training means a fitted model keeps (``feature_means_``): days since ...
AVERAGES = {"recency_days": 300.0, "days_since_last_event": 400.0, "days_since_beauty": 380.0}


def frame(columns: dict[str, list[float]], index: pd.Index = IDS) -> pd.DataFrame:
    return pd.DataFrame(columns, index=index)


def reasons(
    features: pd.DataFrame, contrib: dict[str, list[float]], bias: list[float], **kwargs: object
) -> dict[str, list[str]]:
    """Each customer's reason texts (zh unless ``language`` is given)."""
    c = pd.DataFrame(contrib, index=features.index).assign(bias=bias)
    kwargs.setdefault("language", "zh")
    kwargs.setdefault("context", PhraseContext(averages=AVERAGES))
    out = reasons_frame(c, features, top_k=3, **kwargs)  # type: ignore[arg-type]
    return {cid: out.loc[out["customer_id"] == cid, "text"].tolist() for cid in features.index}


# C00000130 of the review: 12 orders, 152 days since the last, usually every 80. Against a
# base of mostly long-lapsed customers, 152 days lowers the churn risk (LOW) ...
RECENCY = frame(
    {
        "recency_days": [152.4, 152.4],
        "interpurchase_mean_days": [79.9, 79.9],
        "orders_lifetime": [12, 12],
    }
)
LOWERS_LOW_RAISES_HIGH = {"recency_days": [-1.0, 1.0]}
BIAS = [-1.0, 1.0]


def test_recency_that_lowers_churn_reads_as_more_recent_than_most_not_overdue() -> None:
    churn = reasons(RECENCY, LOWERS_LOW_RAISES_HIGH, BIAS, target="churn")
    assert churn == {
        "LOW": ["↓最近一次购买在152天前（比平均水平近）"],
        "HIGH": ["已152天未购买，平时约每80天购买一次"],
    }
    en = reasons(RECENCY, LOWERS_LOW_RAISES_HIGH, BIAS, target="churn", language="en")
    assert en == {
        "LOW": ["↓last purchase 152 days ago, more recently than average"],
        "HIGH": ["no purchase for 152 days, usually every 80"],
    }


def test_recency_that_raises_a_purchase_propensity_is_not_overdue_either() -> None:
    # The other way round: overdue lowers a purchase (LOW), and raising it reads as recent.
    purchase = reasons(RECENCY, LOWERS_LOW_RAISES_HIGH, BIAS, target="purchase:beauty")
    assert purchase == {
        "LOW": ["↓已152天未购买，平时约每80天购买一次"],
        "HIGH": ["最近一次购买在152天前（比平均水平近）"],
    }


def test_recency_raising_churn_within_the_usual_interval_drops_the_interval() -> None:
    # 45 days against a usual 60 argues the customer is on time: not shown as why churn is high.
    features = frame(
        {"recency_days": [45.0, 45.0], "interpurchase_mean_days": [60.0, 60.0],
         "orders_lifetime": [4, 4]}
    )  # fmt: skip
    churn = reasons(features, LOWERS_LOW_RAISES_HIGH, BIAS, target="churn")
    assert churn == {
        "LOW": ["↓最近一次购买在45天前，平时约每60天购买一次"],
        "HIGH": ["最近一次购买在45天前"],
    }


def test_just_bought_lowering_churn_drops_an_interval_already_passed() -> None:
    # 20 days since the last order of someone who buys weekly is recent but overdue.
    features = frame(
        {"recency_days": [20.0, 3.0], "interpurchase_mean_days": [7.0, 30.0],
         "orders_lifetime": [9, 9]}
    )  # fmt: skip
    churn = reasons(features, {"recency_days": [-1.0, -1.0]}, [-1.0, -1.0], target="churn")
    assert churn == {"LOW": ["↓20天前刚购买"], "HIGH": ["↓3天前刚购买，平时约每30天购买一次"]}


def test_online_activity_and_category_days_lowering_churn_say_more_recent_than_most() -> None:
    features = frame({"days_since_last_event": [300.0, 12.0], "days_since_beauty": [200.0, 5.0]})
    contrib = {"days_since_last_event": [-1.0, -1.0], "days_since_beauty": [-0.5, -0.5]}
    churn = reasons(features, contrib, [-1.0, -1.0], target="churn")
    assert churn == {
        "LOW": [
            "↓最近一次线上活动在300天前（比平均水平近）",
            "↓200天前最后一次购买美妆（比平均水平近）",
        ],
        "HIGH": ["↓最近一次线上活动在12天前", "↓5天前最后一次购买美妆"],
    }


def test_days_not_below_the_average_lower_churn_without_claiming_more_recent() -> None:
    # 1,008 days since the last beauty purchase lowers churn against a base that mostly never
    # bought beauty; it is not more recent than the average buyer's 380 days, so no claim.
    features = frame({"recency_days": [320.0, 299.0], "days_since_beauty": [1008.0, 379.0]})
    contrib = {"recency_days": [-1.0, -1.0], "days_since_beauty": [-0.5, -0.5]}
    churn = reasons(features, contrib, [-1.0, -1.0], target="churn")
    assert churn == {
        "LOW": ["↓最近一次购买在320天前", "↓1008天前最后一次购买美妆"],
        "HIGH": [
            "↓最近一次购买在299天前（比平均水平近）",
            "↓379天前最后一次购买美妆（比平均水平近）",
        ],
    }
    # Without the averages (a model saved before it kept them) nothing is claimed.
    unknown = reasons(features, contrib, [-1.0, -1.0], target="churn", context=PhraseContext())
    assert unknown["HIGH"] == ["↓最近一次购买在299天前", "↓379天前最后一次购买美妆"]


@pytest.mark.parametrize(
    ("columns", "driver", "wrong_way"),
    [
        ({"browse_events_since_last_order": [0.0, 0.0]}, "browse_events_since_last_order",
         "上次购买后未再浏览"),
        ({"complaints_90d": [2.0, 2.0], "days_since_last_complaint": [10.0, 10.0]},
         "complaints_90d", "投诉"),
        ({"tier_level": [1.0, 1.0], "days_since_tier_change": [30.0, 30.0],
          "last_tier_change_direction": [-1.0, -1.0]}, "last_tier_change_direction", "等级下降"),
        ({"revenue_trend_90d": [-500.0, -500.0]}, "revenue_trend_90d", "少消费"),
        ({"orders_180d": [0.0, 0.0]}, "orders_180d", "下单0次"),
        ({"events_page_view_90d": [0.0, 0.0]}, "events_page_view_90d", "浏览页面0次"),
        ({"recency_days": [np.nan, np.nan]}, "recency_days", "从未购买"),
    ],
)  # fmt: skip
def test_words_that_read_as_lapsing_are_not_shown_as_why_churn_is_low(
    columns, driver, wrong_way
) -> None:
    features = frame({**columns, "discount_share": [0.4, 0.4]})
    contrib = {driver: [-1.0, 1.0], "discount_share": [-0.2, 0.2]}
    churn = reasons(features, contrib, BIAS, target="churn")
    # LOW: the lapse fact lowers churn, so it is skipped and the next topic fills in.
    assert churn["LOW"] == ["↓折扣消费占比40%"]
    assert wrong_way in churn["HIGH"][0]
    # The same facts lowering a purchase propensity are shown: they argue that way.
    purchase = reasons(features, contrib, BIAS, target="purchase")
    assert wrong_way in purchase["LOW"][0]
    assert purchase["HIGH"] == ["折扣消费占比40%"]


@pytest.mark.parametrize(
    ("columns", "driver", "wrong_way"),
    [
        ({"browse_events_since_last_order": [5.0, 5.0]}, "browse_events_since_last_order",
         "上次购买后浏览5次"),
        ({"complaints_90d": [0.0, 0.0]}, "complaints_90d", "近90天无投诉"),
        ({"tier_level": [2.0, 2.0], "days_since_tier_change": [30.0, 30.0],
          "last_tier_change_direction": [1.0, 1.0]}, "last_tier_change_direction", "等级提升"),
        ({"revenue_trend_90d": [500.0, 500.0]}, "revenue_trend_90d", "多消费"),
    ],
)  # fmt: skip
def test_words_that_read_as_active_are_not_shown_as_why_churn_is_high(
    columns, driver, wrong_way
) -> None:
    features = frame({**columns, "discount_share": [0.4, 0.4]})
    contrib = {driver: [-1.0, 1.0], "discount_share": [-0.2, 0.2]}
    churn = reasons(features, contrib, BIAS, target="churn")
    assert churn["HIGH"] == ["折扣消费占比40%"]
    assert wrong_way in churn["LOW"][0]


def test_without_a_target_every_topic_is_shown_as_before() -> None:
    features = frame({"browse_events_since_last_order": [0.0, 0.0]})
    assert reasons(features, {"browse_events_since_last_order": [-1.0, 1.0]}, BIAS) == {
        "LOW": ["↓上次购买后未再浏览"],
        "HIGH": ["上次购买后未再浏览"],
    }


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValidationError, match="target must be one of churn, purchase"):
        reasons(RECENCY, LOWERS_LOW_RAISES_HIGH, BIAS, target="chrun")


def test_explain_reads_the_target_from_the_model() -> None:
    class Churn:
        target = "churn"

        def __init__(self) -> None:
            self.feature_means_ = {"recency_days": 200.0}  # as a fitted model holds them

        def explain_proba(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
            contrib = pd.DataFrame(LOWERS_LOW_RAISES_HIGH, index=X.index).assign(bias=BIAS)
            return np.array([0.2, 0.9]), contrib

    out = explain(Churn(), RECENCY, language="zh")
    assert out["text"].tolist() == [
        "↓最近一次购买在152天前（比平均水平近）",
        "已152天未购买，平时约每80天购买一次",
    ]


# ------------------------------------------------------------------------------ F10: one fact once

# C00000050 of the review: 已511天未购买… | 近180天下单0次 | 近365天下单0次.
RESTATED = frame(
    {
        "recency_days": [511.0, 1095.0],
        "interpurchase_mean_days": [203.0, np.nan],
        "orders_lifetime": [4, 1],
        "orders_180d": [0, 0],
        "orders_365d": [0, 0],
        "revenue_365d": [0.0, 0.0],
        "days_since_electronics": [511.2, 1095.0],
        "days_since_first_order": [1400.0, 1095.0],
        "days_since_last_event": [999.0, 1200.0],
        "browse_events_since_last_order": [0, 0],
        "discount_share": [0.3, 0.3],
        "tenure_days": [1500.0, 1100.0],
    }
)


def test_facts_implied_by_another_reason_join_its_topic() -> None:
    contrib = {
        "recency_days": [0.9, 1.0],
        "orders_180d": [0.5, 0.2],
        "orders_365d": [0.4, 0.2],
        "revenue_365d": [0.1, 0.1],
        "days_since_electronics": [0.3, 0.6],
        "days_since_first_order": [0.05, 0.3],
        "days_since_last_event": [0.2, 0.7],
        "browse_events_since_last_order": [0.35, 0.5],
        "discount_share": [0.15, 0.1],
        "tenure_days": [0.12, 0.05],
        "orders_lifetime": [0.0, 0.0],
        "interpurchase_mean_days": [0.0, 0.0],
    }
    c = pd.DataFrame(contrib, index=IDS).assign(bias=0.0)
    out = reasons_frame(c, RESTATED, top_k=3, language="zh", target="churn")
    low = out[out["customer_id"] == "LOW"]
    assert low["text"].tolist() == [
        "已511天未购买，平时约每203天购买一次",
        "最近一次线上活动在999天前",
        "折扣消费占比30%",
    ]
    # recency + both zero-order windows + zero revenue + electronics on the same day.
    assert low["contribution"].tolist() == pytest.approx([0.9 + 0.5 + 0.4 + 0.1 + 0.3, 0.55, 0.15])
    high = out[out["customer_id"] == "HIGH"]
    # One order 1095 days ago: first purchase, electronics and recency are one fact.
    assert high["text"].tolist() == [
        "最近一次购买在1095天前",
        "最近一次线上活动在1200天前",
        "折扣消费占比30%",
    ]
    assert high["contribution"].tolist() == pytest.approx([2.4, 1.2, 0.1])


def test_a_fact_not_implied_keeps_its_own_reason() -> None:
    # Orders in the last 365 days, electronics bought earlier than the last order, and
    # browsing after the last online activity: three facts of their own.
    features = frame(
        {
            "recency_days": [100.0, 100.0],
            "orders_365d": [2, 2],
            "days_since_electronics": [300.0, 300.0],
            "days_since_last_event": [50.0, 50.0],
            "browse_events_since_last_order": [0, 0],
        }
    )
    contrib = {
        "recency_days": [1.0, 1.0],
        "orders_365d": [0.3, 0.3],
        "days_since_electronics": [0.2, 0.2],
        "days_since_last_event": [0.0, 0.0],
        "browse_events_since_last_order": [0.1, 0.1],
    }
    c = pd.DataFrame(contrib, index=IDS).assign(bias=0.0)
    out = reasons_frame(c, features, top_k=4, language="zh")
    assert out[out["customer_id"] == "LOW"]["topic"].tolist() == [
        "recency",
        "orders_365d",
        "days_since_electronics",
        "browse_events_since_last_order",
    ]


# ------------------------------------------------------------------------------ F11: levers only

ACTIONABLE = [
    ({"tier_level": 0, "days_since_tier_change": 506, "last_tier_change_direction": 0},
     "last_tier_change_direction", "当前等级0，已506天未变", False),
    ({"tier_level": 1, "days_since_tier_change": 20, "last_tier_change_direction": -1},
     "last_tier_change_direction", "20天前等级下降", True),
    ({"tier_level": 1, "days_since_tier_change": 400, "last_tier_change_direction": -1},
     "last_tier_change_direction", "400天前等级下降", False),
    ({"campaign_contacts_90d": 1, "campaign_response_rate": 0.0},
     "campaign_contacts_90d", "近90天被营销触达1次（历来响应率0%）", False),
    ({"campaign_contacts_90d": 0, "days_since_last_contact": 107},
     "days_since_last_contact", "最近一次营销触达在107天前", False),
    ({"complaints_90d": 2, "days_since_last_complaint": 10},
     "complaints_90d", "近90天投诉2次（最近一次在10天前）", True),
    ({"complaints_90d": 0, "days_since_last_complaint": 200},
     "days_since_last_complaint", "最近一次投诉在200天前", False),
    ({"coupons_issued_90d": 3, "coupons_redeemed_90d": 1}, "coupons_issued_90d",
     "近90天领取3张优惠券，使用1张", True),
    ({"coupons_issued_90d": 3, "coupons_redeemed_90d": 3}, "coupons_issued_90d",
     "近90天领取3张优惠券，使用3张", False),
    ({"coupons_issued_90d": 0}, "coupons_issued_90d", "近90天未发放优惠券", False),
    ({"points_balance": 1200, "points_redeemed_90d": 0}, "points_balance",
     "积分余额1,200，近90天未兑换", True),
    ({"points_balance": 0}, "points_balance", "积分余额0", False),
    ({"points_expiring_30d": 300}, "points_expiring_30d", "30天内将有300积分过期", True),
    ({"stored_value_balance": 500}, "stored_value_balance", "储值余额¥500", True),
    ({"stored_value_balance": 0}, "stored_value_balance", "储值余额¥0", False),
    ({"has_owner": 0}, "has_owner", "无专属顾问", True),
    ({"has_owner": 1}, "has_owner", "有专属顾问", False),
    ({"cart_abandonment_rate_30d": 0.5}, "cart_abandonment_rate_30d", "近30天购物车放弃率50%",
     True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "driver", "text", "actionable"), ACTIONABLE, ids=[t for _, _, t, _ in ACTIONABLE]
)
def test_actionable_means_an_agent_can_act_on_this_value(values, driver, text, actionable) -> None:
    features = pd.DataFrame({k: [float(v)] for k, v in values.items()})
    contrib = pd.DataFrame({driver: [1.0]})
    out = reasons_frame(contrib, features, top_k=1, language="zh")
    assert out[["text", "actionable"]].values.tolist() == [[text, actionable]]
