"""The Chinese customer 360 names tiers as the report tables do: the tier table's label."""

from __future__ import annotations

import pytest
from analysis_rows import ts

from crm_ml.analysis import customer_360, tier_movement

AS_OF = "2024-07-01"


@pytest.fixture
def tiered(insert):
    """Customer c1: classic, then silver, then gold (a tier with no label)."""
    insert(
        "customer",
        [{"customer_id": "c1", "name": "张三", "status": "active", "created_at": ts("2024-01-01")}],
    )
    insert(
        "tier",
        [
            {"tier_id": "t1", "name": "classic", "label": "普通会员", "level": 1,
             "min_spend_12m": 0.0},
            {"tier_id": "t2", "name": "silver", "label": "银卡会员", "level": 2,
             "min_spend_12m": 150.0},
            {"tier_id": "t3", "name": "gold", "label": None, "level": 3, "min_spend_12m": 900.0},
        ],
    )  # fmt: skip
    insert(
        "tier_change",
        [
            {"customer_id": "c1", "changed_at": ts("2024-02-01"), "from_tier": None,
             "to_tier": "t1", "direction": "initial"},
            {"customer_id": "c1", "changed_at": ts("2024-04-01"), "from_tier": "t1",
             "to_tier": "t2", "direction": "up"},
            {"customer_id": "c1", "changed_at": ts("2024-06-01"), "from_tier": "t2",
             "to_tier": "t3", "direction": "up"},
        ],
    )  # fmt: skip


def test_the_chinese_view_shows_the_tier_labels(store, tiered):
    view = customer_360(store, "c1", AS_OF, lang="zh")
    assert list(view.tiers["from_tier"]) == ["—", "普通会员", "银卡会员"]
    assert list(view.tiers["to_tier"]) == ["普通会员", "银卡会员", "gold"]  # no label: the name
    assert view.profile.loc["tier", "value"] == "gold"
    tiers = view.timeline[view.timeline["kind"] == "tier"]["what"].tolist()
    assert tiers == ["— → 普通会员", "普通会员 → 银卡会员", "银卡会员 → gold"]


def test_the_chinese_profile_shows_the_current_tiers_label(store, tiered):
    view = customer_360(store, "c1", "2024-05-01", lang="zh")
    assert view.profile.loc["tier", "value"] == "银卡会员"


def test_the_labels_are_the_report_tables_labels(store, tiered):
    table = tier_movement(store, "2024-01-15", "2024-05-01", labels="label")
    view = customer_360(store, "c1", "2024-05-01", lang="zh")
    assert view.profile.loc["tier", "value"] in table.columns


def test_the_english_view_keeps_the_tier_names(store, tiered):
    view = customer_360(store, "c1", "2024-05-01", lang="en")
    assert list(view.tiers["to_tier"]) == ["classic", "silver"]
    assert view.profile.loc["tier", "value"] == "silver"


def test_gender_and_channel_codes_are_shown_in_the_views_language(store, insert):
    insert(
        "customer",
        [{"customer_id": "c2", "name": "李四", "status": "active", "gender": "female",
          "acquisition_channel": "mini_program", "created_at": ts("2024-01-01")}],
    )  # fmt: skip
    chinese = customer_360(store, "c2", AS_OF, lang="zh").profile["value"]
    assert (chinese["gender"], chinese["acquisition_channel"]) == ("女", "小程序")
    english = customer_360(store, "c2", AS_OF, lang="en").profile["value"]
    assert (english["gender"], english["acquisition_channel"]) == ("female", "mini_program")
