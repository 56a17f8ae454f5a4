from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.phrases import PhraseContext
from crm_ml.models.reasons import reasons_frame, reasons_json, top_reasons

IDS = pd.Index(["C1", "C2", "C3"], name="customer_id")
FEATURES = pd.DataFrame(
    {
        "recency_days": [95.0, 3.0, np.nan],
        "interpurchase_mean_days": [30.0, 30.0, np.nan],
        "points_expiring_30d": [320, 0, 1500],
        "last_tier_change_direction": [-1, 1, 0],
        "days_since_tier_change": [20, 1, 400],
        "tier_level": [1, 2, 0],
        "complaints_90d": [2, 1, 0],
        "revenue_90d": [1234.5, 0.0, 88.0],
        "max_basket_value": [530.0, 12.25, 1.0],
        "city_tier": pd.Categorical(["1", "2", None]),
    },
    index=IDS,
)


def contributions(rows: dict[str, list[float]]) -> pd.DataFrame:
    frame = pd.DataFrame(0.0, index=IDS, columns=[*FEATURES.columns, "bias"])
    for col, values in rows.items():
        frame[col] = values
    return frame


CONTRIB = contributions(
    {
        "recency_days": [0.5, -0.2, 0.9],
        "interpurchase_mean_days": [0.3, 0.0, 0.0],  # pooled with recency: 0.8 for C1
        "points_expiring_30d": [0.4, 0.0, 0.1],
        "days_since_tier_change": [0.1, 0.05, 0.0],
        "last_tier_change_direction": [0.2, 0.0, 0.0],  # tier topic: 0.3 for C1
        "complaints_90d": [0.05, 0.6, -0.1],
        "max_basket_value": [0.0, 0.2, 0.0],
    }
)  # bias 0: every score is above 50/50, so these reasons are what raises it


def test_english_phrases_with_the_customers_values() -> None:
    frame = reasons_frame(CONTRIB, FEATURES, top_k=3)
    c1 = frame[frame["customer_id"] == "C1"]
    assert c1["text"].tolist() == [
        "no purchase for 95 days, usually every 30",
        "320 points expire within 30 days",
        "downgraded a tier 20 days ago",
    ]
    assert c1["topic"].tolist() == ["recency", "points_expiring_30d", "tier"]
    assert c1["actionable"].tolist() == [False, True, True]
    assert c1["contribution"].tolist() == pytest.approx([0.8, 0.4, 0.3])
    c2 = frame[frame["customer_id"] == "C2"]
    assert c2["text"].tolist() == [
        "1 complaint in the last 90 days",
        "largest basket ¥12",
        "upgraded a tier 1 day ago",
    ]
    c3 = frame[frame["customer_id"] == "C3"]
    # Above 50/50, only drivers that raise the score are reasons.
    assert c3["text"].tolist() == ["has never purchased", "1,500 points expire within 30 days"]


def test_tier_names_when_known() -> None:
    ctx = PhraseContext(tier_names={0: "Member", 1: "Silver", 2: "Gold"})
    frame = reasons_frame(CONTRIB, FEATURES, top_k=3, context=ctx)
    texts = frame["text"].tolist()
    assert "downgraded from Gold 20 days ago" in texts
    assert "upgraded to Gold 1 day ago" in texts


def test_chinese_phrases() -> None:
    ctx = PhraseContext(tier_names={1: "银卡", 2: "金卡"})
    frame = reasons_frame(CONTRIB, FEATURES, top_k=3, language="zh", context=ctx)
    assert frame["text"].tolist() == [
        "已95天未购买，平时约每30天购买一次",
        "30天内将有320积分过期",
        "20天前从金卡降级",
        "近90天投诉1次",
        "最大单笔消费¥12",
        "1天前升级为金卡",
        "从未购买",
        "30天内将有1,500积分过期",
    ]


def test_profile_codes_read_as_words() -> None:
    features = pd.DataFrame(
        {
            "acquisition_channel": ["referral", "mini_program", "carrier_pigeon"],
            "gender": ["female", "male", "unknown"],
            "age_band": ["25_34", "55_plus", "unknown"],
        },
        index=IDS,
    )
    contrib = pd.DataFrame(
        {"acquisition_channel": 0.3, "gender": 0.2, "age_band": 0.1, "bias": 0.0},
        index=IDS,
    )
    zh = reasons_frame(contrib, features, top_k=3, language="zh")
    assert zh[zh["customer_id"] == "C1"]["text"].tolist() == [
        "获客渠道：老客推荐",
        "性别：女",
        "年龄段：25-34岁",
    ]
    en = reasons_frame(contrib, features, top_k=1, language="en")["text"].tolist()
    # A code without a label is shown as stored.
    assert en == [
        "acquired via a referral",
        "acquired via the mini program",
        "acquired via carrier_pigeon",
    ]


def test_pattern_and_generic_fallbacks() -> None:
    features = pd.DataFrame(
        {
            "revenue_90d": [1234.5],
            "events_page_view_30d": [7],
            "consent_wechat_marketing": [0],
            "mystery_score": [0.4567],
            "complaints_90d": [2],
        },
        index=pd.Index(["C9"], name="customer_id"),
    )
    contrib = pd.DataFrame(
        [[0.5, 0.4, 0.3, 0.2, 0.1]], index=features.index, columns=features.columns
    )
    en = reasons_frame(contrib, features, top_k=5)["text"].tolist()
    assert en == [
        "spent ¥1,234 in the last 90 days",
        "7 page views in the last 30 days",
        "no consent for WeChat marketing",
        "mystery score: 0.46",
        "2 complaints in the last 90 days",
    ]
    zh = reasons_frame(contrib, features, top_k=5, language="zh")["text"].tolist()
    assert zh == [
        "近90天消费¥1,234",
        "近30天浏览页面7次",
        "未同意微信营销",
        "mystery_score：0.46",
        "近90天投诉2次",
    ]
    usd = reasons_frame(contrib, features, top_k=1, context=PhraseContext(currency="USD"))
    assert usd["text"].tolist() == ["spent $1,234 in the last 90 days"]


def test_category_features_name_the_category() -> None:
    features = pd.DataFrame(
        {"days_since_maternity_baby": [45.0, np.nan], "affinity_beauty": [0.5, 0.1]},
        index=pd.Index(["C1", "C2"], name="customer_id"),
    )
    contrib = pd.DataFrame(
        {"days_since_maternity_baby": [0.5, 0.5], "affinity_beauty": [0.1, 0.1]},
        index=features.index,
    )
    zh = reasons_frame(contrib, features, top_k=2, language="zh")["text"].tolist()
    assert zh == [
        "45天前最后一次购买母婴",
        "美妆消费占比50%",
        "从未购买母婴",
        "美妆消费占比10%",
    ]
    en = reasons_frame(contrib, features, top_k=2)["text"].tolist()
    assert en == [
        "last bought maternity baby 45 days ago",
        "beauty share of spend: 50%",
        "never bought maternity baby",
        "beauty share of spend: 10%",
    ]


def test_day_counts_read_alike_in_every_reason() -> None:
    # 已1091天未购买 next to 最近一次线上活动在1,091天前 read as two different numbers.
    ids = pd.Index(["C1"], name="customer_id")
    features = pd.DataFrame(
        {"days_since_last_event": [1091.0], "days_since_beauty": [1200.0]}, index=ids
    )
    contrib = pd.DataFrame({"days_since_last_event": [0.5], "days_since_beauty": [0.4]}, index=ids)
    zh = reasons_frame(contrib, features, top_k=2, language="zh")["text"].tolist()
    assert zh == ["最近一次线上活动在1091天前", "1200天前最后一次购买美妆"]


def test_browsing_since_the_last_order() -> None:
    ids = pd.Index(["C1", "C2", "C3"], name="customer_id")
    features = pd.DataFrame({"browse_events_since_last_order": [3.0, 0.0, np.nan]}, index=ids)
    contrib = pd.DataFrame({"browse_events_since_last_order": [0.4, 0.4, 0.4]}, index=ids)
    zh = reasons_frame(contrib, features, top_k=1, language="zh")["text"].tolist()
    assert zh == ["上次购买后浏览3次", "上次购买后未再浏览", "尚未下单"]
    en = reasons_frame(contrib, features, top_k=1)["text"].tolist()
    assert en == ["3 browsing events since the last order", "no browsing since the last order",
                  "no order yet"]  # fmt: skip


def test_json_matches_the_score_table_format() -> None:
    series = reasons_json(CONTRIB, FEATURES, top_k=2, language="zh")
    assert series.index.equals(IDS)
    first = json.loads(series["C1"])
    assert first == [
        {
            "feature": "recency",
            "text": "已95天未购买，平时约每30天购买一次",
            "actionable": False,
            "direction": "raises",
            "contribution": 0.8,
        },
        {
            "feature": "points_expiring_30d",
            "text": "30天内将有320积分过期",
            "actionable": True,
            "direction": "raises",
            "contribution": 0.4,
        },
    ]
    assert "已95天" in series["C1"]  # not \u-escaped
    none = reasons_json(CONTRIB * 0, FEATURES)
    assert none.tolist() == ["[]", "[]", "[]"]


def test_errors() -> None:
    with pytest.raises(ValidationError, match="language"):
        top_reasons(CONTRIB, FEATURES, language="fr")
    with pytest.raises(ValidationError, match="differ in length"):
        top_reasons(CONTRIB, FEATURES.head(2))


def test_many_customers_quickly() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    features = pd.DataFrame(
        {c: rng.integers(0, 100, n).astype(float) for c in FEATURES.columns if c != "city_tier"}
    )
    contrib = pd.DataFrame(rng.normal(size=features.shape), columns=features.columns)
    series = reasons_json(contrib, features, top_k=3)
    assert len(series) == n
    assert all(s.startswith("[{") for s in series.head(100))


def test_a_customer_who_never_had_a_tier_is_not_given_the_base_tier() -> None:
    # No tier change before as_of: tier_level is 0 as for the base tier, days are missing.
    features = FEATURES.assign(
        tier_level=[0, 0, 1],
        days_since_tier_change=[np.nan, 30.0, 5.0],
        last_tier_change_direction=[0, 0, 0],
    )
    contrib = contributions({"tier_level": [0.5, 0.5, 0.5]})
    ctx = PhraseContext(tier_names={0: "普通会员", 1: "银卡会员"})
    zh = reasons_frame(contrib, features, top_k=1, language="zh", context=ctx)
    assert zh["text"].tolist() == [
        "暂无会员等级",
        "当前等级普通会员，已30天未变",
        "当前等级银卡会员，已5天未变",
    ]
    en = reasons_frame(contrib, features, top_k=1, context=PhraseContext(tier_names={0: "classic"}))
    assert en["text"].tolist()[:2] == ["no tier yet", "tier classic, unchanged for 30 days"]
    # Without the days column the two cannot be told apart: the level's name, as before.
    no_days = features.drop(columns="days_since_tier_change")
    alone = reasons_frame(contrib, no_days, top_k=1, language="zh", context=ctx)
    assert alone["text"].tolist()[0] == "当前等级普通会员"
    # The features say "no tier" themselves: tier_level is missing.
    missing = no_days.assign(tier_level=[np.nan, 0.0, 1.0])
    named = reasons_frame(contrib, missing, top_k=1, language="zh", context=ctx)
    assert named["text"].tolist()[:2] == ["暂无会员等级", "当前等级普通会员"]
