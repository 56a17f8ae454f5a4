from pathlib import Path

import pytest

from crm_ml.errors import ConfigError
from crm_ml.features import FeatureWindows, catalog, catalog_markdown, feature_list
from crm_ml.features.catalog import GROUP_NAMES, select_groups
from crm_ml.features.spec import Feature

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"

#: The shared column vocabulary other modules (reasons, tags) key on.
VOCABULARY = [
    "recency_days",
    "orders_30d",
    "orders_90d",
    "orders_180d",
    "orders_365d",
    "orders_lifetime",
    "revenue_30d",
    "revenue_90d",
    "revenue_180d",
    "revenue_365d",
    "revenue_lifetime",
    "avg_order_value",
    "tenure_days",
    "days_since_first_order",
    "interpurchase_mean_days",
    "interpurchase_std_days",
    "recency_ratio",
    "revenue_trend_90d",
    "refund_rate",
    "discount_share",
    "max_basket_value",
    "categories_distinct",
    "top_category_share",
    "affinity_maternity_baby",
    "affinity_beauty",
    "affinity_food",
    "affinity_apparel",
    "affinity_electronics",
    "affinity_home",
    "online_share",
    "stores_distinct",
    "events_page_view_30d",
    "events_page_view_90d",
    "events_add_to_cart_30d",
    "days_since_last_event",
    "browse_events_since_last_order",
    "cart_abandonment_rate_30d",
    "searches_30d",
    "complaints_90d",
    "feedback_90d",
    "days_since_last_complaint",
    "points_balance",
    "points_earned_90d",
    "points_redeemed_90d",
    "points_expiring_30d",
    "tier_level",
    "days_since_tier_change",
    "last_tier_change_direction",
    "coupons_issued_90d",
    "coupons_redeemed_90d",
    "coupon_redemption_rate",
    "stored_value_balance",
    "stored_value_spent_90d",
    "campaign_contacts_90d",
    "campaign_response_rate",
    "days_since_last_contact",
    "age_band",
    "gender",
    "city_tier",
    "acquisition_channel",
    "is_member",
    "consent_sms_marketing",
    "consent_email_marketing",
    "consent_wechat_marketing",
    "has_owner",
]


def test_catalog_lists_the_vocabulary_with_types_and_groups():
    table = catalog()
    assert list(table.columns) == ["group", "dtype", "unit", "description", "fill", "categories"]
    assert table.index.is_unique
    assert set(VOCABULARY) <= set(table.index)
    assert set(table["group"]) == set(GROUP_NAMES)
    assert set(table["dtype"]) == {"int64", "float64", "bool", "category"}
    assert (table["description"].str.len() > 10).all()


def test_categorical_features_have_fixed_categories():
    table = catalog()
    categorical = table[table["dtype"] == "category"]
    assert set(categorical.index) == {"age_band", "gender", "acquisition_channel"}
    assert (categorical["categories"].str.contains("unknown")).all()
    assert (table.loc[table["dtype"] != "category", "categories"] == "").all()


def test_windows_rename_window_columns():
    names = {f.name for f in feature_list(windows=FeatureWindows(value_days=(7,), recent_days=60))}
    assert {"orders_7d", "revenue_7d", "points_earned_60d", "revenue_trend_60d"} <= names
    assert "orders_30d" not in names


def test_docs_page_is_generated_from_the_catalog():
    assert DOCS.read_text(encoding="utf-8") == catalog_markdown(), (
        "docs/features.md is stale: regenerate it with "
        "python -c 'from crm_ml.features import catalog_markdown as m; "
        'open("docs/features.md", "w").write(m())\''
    )
    assert "| `recency_days` | float64 | days |" in catalog_markdown()


def test_unknown_group_is_refused_with_the_list():
    with pytest.raises(ConfigError, match=r"Unknown feature group.*'loyality'.*value, product"):
        select_groups(["value", "loyality"])


def test_bad_windows_are_refused():
    with pytest.raises(ConfigError, match="positive whole days"):
        FeatureWindows(value_days=(30, 0))


def test_a_category_feature_needs_categories():
    with pytest.raises(ConfigError, match="needs fixed categories"):
        Feature("x", "profile", "category", "label", "A label.")
