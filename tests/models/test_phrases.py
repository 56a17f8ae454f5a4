"""Reason phrases: every catalogue feature has its own words, and no day count reads 0天前."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from crm_ml.features import feature_list
from crm_ml.features.spec import Feature, FeatureWindows
from crm_ml.models.phrases import PhraseContext
from crm_ml.models.reasons import reasons_frame

#: A plausible value per unit, for the row of customers with history.
TYPICAL = {
    "days": 30.0,
    "count": 3,
    "currency": 8000.0,
    "ratio": 0.25,
    "points": 300,
    "level": 2,
    "direction": -1,
    "flag": True,
}


def _column(feature: Feature, values: list[object]) -> pd.Series:
    if feature.dtype == "category":
        return pd.Series(pd.Categorical(values, categories=feature.categories))
    return pd.Series(values).astype(feature.dtype)


def catalogue_rows(windows: FeatureWindows) -> tuple[list[Feature], pd.DataFrame]:
    """Two customers over the whole catalogue: typical values, and no history (the fills)."""
    features = feature_list(windows=windows)
    columns = {}
    for f in features:
        typical = f.categories[0] if f.dtype == "category" else TYPICAL[f.unit]
        columns[f.name] = _column(f, [typical, f.fill])
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(["typical", "no_history"], name="customer_id")
    return features, frame


def texts(features: pd.DataFrame, feature: str, language: str) -> list[str]:
    """Each customer's reason when ``feature`` is the only driver."""
    contrib = pd.DataFrame(0.0, index=features.index, columns=features.columns)
    contrib[feature] = 1.0
    frame = reasons_frame(contrib, features, top_k=1, language=language)
    return frame["text"].tolist()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_catalogue_feature_has_its_own_phrase(language) -> None:
    features, frame = catalogue_rows(FeatureWindows())
    generic = []
    for f in features:
        # The generic fallback writes the column name: revenue_trend_90d：8,000 / refund rate: —.
        raw = f.name if language == "zh" else f"{f.name.replace('_', ' ')}: "
        for text in texts(frame, f.name, language):
            if raw in text or "—" in text:
                generic.append(f"{f.name} -> {text}")
    assert generic == []


def _reasons(columns: dict[str, list[float]], driver: str, language: str) -> list[str]:
    features = pd.DataFrame(columns, index=pd.Index(["a", "b", "c"][: len(columns[driver])]))
    return texts(features, driver, language)


def test_revenue_trend_says_more_or_less_than_before() -> None:
    trend = {"revenue_trend_90d": [8000.0, -1234.5, 0.0]}
    assert _reasons(trend, "revenue_trend_90d", "zh") == [
        "近90天比前90天多消费¥8,000",
        "近90天比前90天少消费¥1,234",
        "近90天消费与前90天持平",
    ]
    assert _reasons(trend, "revenue_trend_90d", "en") == [
        "spent ¥8,000 more in the last 90 days than in the 90 days before",
        "spent ¥1,234 less in the last 90 days than in the 90 days before",
        "spent as much in the last 90 days as in the 90 days before",
    ]
    other = {"revenue_trend_60d": [-50.0]}
    assert _reasons(other, "revenue_trend_60d", "zh") == ["近60天比前60天少消费¥50"]


def test_a_usual_interval_needs_three_orders_and_a_response_rate_says_it_is_all_time() -> None:
    recency = {
        "recency_days": [226.0, 95.0],
        "interpurchase_mean_days": [2.0, 30.0],
        "orders_lifetime": [2, 3],
    }
    # Two orders two days apart are no habit of buying every two days, nor of being overdue.
    assert _reasons(recency, "recency_days", "zh") == [
        "最近一次购买在226天前",
        "已95天未购买，平时约每30天购买一次",
    ]
    campaign = {
        "campaign_contacts_90d": [1.0, 0.0],
        "campaign_response_rate": [0.5, 0.25],
        "days_since_last_contact": [20.0, np.nan],
    }
    assert _reasons(campaign, "campaign_contacts_90d", "zh") == [
        "近90天被营销触达1次（历来响应率50%）",
        "历来营销响应率25%",
    ]
    assert _reasons(campaign, "campaign_contacts_90d", "en") == [
        "contacted 1 time in the last 90 days (all-time response rate 50%)",
        "all-time campaign response rate 25%",
    ]


def test_first_purchase_days() -> None:
    first = {"days_since_first_order": [30.4, 1.0, np.nan]}
    assert _reasons(first, "days_since_first_order", "zh") == [
        "首次购买于30天前",
        "首次购买于1天前",
        "从未购买",
    ]
    assert _reasons(first, "days_since_first_order", "en") == [
        "first purchase 30 days ago",
        "first purchase 1 day ago",
        "has never purchased",
    ]


# Under half a day rounds to 0 days like every day count (f"{v:.0f}"): it reads 1天内 /
# "within the last day".
TODAY = [
    (
        {"recency_days": [0.2], "interpurchase_mean_days": [30.0]},
        "recency_days",
        "1天内刚购买，平时约每30天购买一次",
        "bought within the last day, usually every 30",
    ),
    ({"recency_days": [0.5]}, "recency_days", "1天内刚购买", "bought within the last day"),
    (
        # Same-day repeat orders: a mean gap of 0.1 days does not make a purchase overdue.
        {"recency_days": [0.3], "interpurchase_mean_days": [0.1]},
        "recency_days",
        "1天内刚购买，平时一天内多次购买",
        "bought within the last day, usually several times a day",
    ),
    ({"recency_days": [0.6]}, "recency_days", "1天前刚购买", "last purchase 1 day ago"),
    ({"days_since_first_order": [0.2]}, "days_since_first_order", "首次购买于1天内",
     "first purchase within the last day"),
    ({"days_since_beauty": [0.4]}, "days_since_beauty", "1天内最后一次购买美妆",
     "last bought beauty within the last day"),
    ({"days_since_last_event": [0.1]}, "days_since_last_event", "最近一次线上活动在1天内",
     "last online activity within the last day"),
    ({"days_since_last_feedback": [0.1]}, "days_since_last_feedback", "最近一次反馈在1天内",
     "last feedback within the last day"),
    ({"tenure_days": [0.3]}, "tenure_days", "1天内成为客户",
     "became a customer within the last day"),
    (
        {"tier_level": [1.0], "days_since_tier_change": [0.2], "last_tier_change_direction": [-1]},
        "tier_level",
        "1天内等级下降",
        "downgraded a tier within the last day",
    ),
    (
        {"tier_level": [2.0], "days_since_tier_change": [0.2], "last_tier_change_direction": [1]},
        "tier_level",
        "1天内等级提升",
        "upgraded a tier within the last day",
    ),
    (
        {"tier_level": [2.0], "days_since_tier_change": [0.2], "last_tier_change_direction": [0]},
        "tier_level",
        "当前等级2，1天内刚变更",
        "tier 2, changed within the last day",
    ),
    (
        {"complaints_90d": [1], "days_since_last_complaint": [0.2]},
        "complaints_90d",
        "近90天投诉1次（最近一次在1天内）",
        "1 complaint in the last 90 days, the last within the last day",
    ),
    (
        {"complaints_90d": [0], "days_since_last_complaint": [0.2]},
        "days_since_last_complaint",
        "最近一次投诉在1天内",
        "last complaint within the last day",
    ),
    (
        {"campaign_contacts_90d": [0], "days_since_last_contact": [0.2]},
        "days_since_last_contact",
        "最近一次营销触达在1天内",
        "last contacted within the last day",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("columns", "driver", "zh", "en"), TODAY, ids=[en for *_, en in TODAY])
def test_a_day_count_that_rounds_to_zero_reads_within_the_last_day(columns, driver, zh, en) -> None:
    assert _reasons(columns, driver, "zh") == [zh]
    assert _reasons(columns, driver, "en") == [en]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_no_reason_says_zero_days(language) -> None:
    features, frame = catalogue_rows(FeatureWindows())
    days = [f.name for f in features if f.unit == "days"]
    frame.loc[:, days] = 0.3
    frame["interpurchase_mean_days"] = 0.3
    zero = re.compile(r"(?<![\d.])0(天| days?\b)|every 0\b")  # not 近30天, 90 days
    said = [(f.name, t) for f in features for t in texts(frame, f.name, language) if zero.search(t)]
    assert said == []


def test_tier_names_within_the_last_day() -> None:
    ctx = PhraseContext(tier_names={1: "银卡", 2: "金卡"})
    features = pd.DataFrame(
        {"tier_level": [1.0], "days_since_tier_change": [0.2], "last_tier_change_direction": [-1]}
    )
    contrib = pd.DataFrame({"tier_level": [1.0]})
    zh = reasons_frame(contrib, features, top_k=1, language="zh", context=ctx)
    assert zh["text"].tolist() == ["1天内从金卡降级"]


def test_overdue_compares_the_days_before_they_are_rounded_for_display() -> None:
    # All three show 30 days against a usual 30; only the last two are past the usual gap.
    columns = {"recency_days": [29.6, 30.4, 30.6], "interpurchase_mean_days": [30.4, 30.4, 30.4]}
    assert _reasons(columns, "recency_days", "zh") == [
        "30天前刚购买，平时约每30天购买一次",
        "已30天未购买，平时约每30天购买一次",
        "已31天未购买，平时约每30天购买一次",
    ]
    assert _reasons(columns, "recency_days", "en") == [
        "last purchase 30 days ago, usually every 30",
        "no purchase for 30 days, usually every 30",
        "no purchase for 31 days, usually every 30",
    ]


def test_just_bought_only_within_a_month_and_overdue_only_by_a_habit() -> None:
    # C00000014 of the review: 2 orders, the last 500 days ago, one gap of 596 days. One gap
    # is no habit, so neither "within the usual interval" nor "just bought": the plain days.
    recency = {
        "recency_days": [499.9, 45.0, 30.4],
        "interpurchase_mean_days": [595.9, 60.0, np.nan],
        "orders_lifetime": [2, 5, 1],
    }
    assert _reasons(recency, "recency_days", "zh") == [
        "最近一次购买在500天前",
        "最近一次购买在45天前，平时约每60天购买一次",
        "30天前刚购买",
    ]
    assert _reasons(recency, "recency_days", "en") == [
        "last purchase 500 days ago",
        "last purchase 45 days ago, usually every 60",
        "last purchase 30 days ago",
    ]
