"""The bars of a portrait are named in the reader's language, tags and tiers by their labels."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from customer_helpers import features

from crm_ml.segments import plot_portrait, portrait_names, segment_portrait
from crm_ml.store import Store
from crm_ml.store.schema import Base


def _base() -> pd.DataFrame:
    return features(
        recency_days=[90.0, 10.0, 70.0, 5.0],
        affinity_beauty=[0.9, 0.1, 0.8, 0.0],
        tier_level=[1, 2, 1, 0],
        acquisition_channel=["mini_program", "app", "mini_program", "web"],
        gender=["female", "male", "female", "unknown"],
        some_new_feature=[1.0, 2.0, 3.0, 4.0],
    )


def _flags() -> pd.DataFrame:
    return pd.DataFrame({"high_value": [True, False, True, False]}, index=_base().index)


def _bar_labels(lang: str, names: dict[str, str]) -> set[str]:
    numeric = ["recency_days", "some_new_feature"]
    portrait = segment_portrait(
        _base(), ["c1", "c3"], tag_flags=_flags(), numeric=numeric, min_size=1
    )
    figure = plot_portrait(portrait, lang=lang, names=names, top=50)
    figure.canvas.draw()
    return {label.get_text() for label in figure.axes[0].get_yticklabels()}


NAMES = {"high_value": "高价值客户", "tier_level=1": "银卡会员"}


def test_a_chinese_portrait_shows_no_code_names() -> None:
    labels = _bar_labels("zh", NAMES)
    assert {
        "距上次购买天数",
        "品类偏好：美妆",
        "银卡会员",
        "会员等级：2",  # a level the store does not name
        "获客渠道：小程序",
        "性别：女",
        "高价值客户",
        "some_new_feature",  # a feature without a name keeps its column name
    } <= labels
    assert not any("=" in label or "_" in label for label in labels - {"some_new_feature"})


def test_an_english_portrait_uses_english_names() -> None:
    labels = _bar_labels("en", {"high_value": "High value", "tier_level=1": "silver"})
    assert {
        "days since last purchase",
        "affinity: beauty",
        "silver",
        "channel: the mini program",
    } <= labels
    assert "High value" in labels


def test_the_store_names_tags_and_tiers(duckdb_store: Store) -> None:
    tiers = [
        {"tier_id": "t1", "name": "silver", "label": "银卡会员", "level": 1, "min_spend_12m": 0},
        {"tier_id": "t2", "name": "gold", "label": None, "level": 2, "min_spend_12m": 500},
    ]
    tag = {"tag_id": "high_value", "name": "high_value", "label": "高价值客户", "kind": "manual",
           "version": 1, "created_at": datetime(2024, 1, 1)}  # fmt: skip
    with duckdb_store.begin() as conn:
        conn.execute(Base.metadata.tables["tier"].insert(), tiers)
        conn.execute(Base.metadata.tables["tag_definition"].insert(), [tag])
    assert portrait_names(duckdb_store, "zh") == {
        "tier_level=1": "银卡会员",
        "tier_level=2": "gold",  # no label: its name
        "high_value": "高价值客户",
    }
    assert portrait_names(duckdb_store, "en")["tier_level=1"] == "silver"
