"""The report's value quadrants are the value-quadrant tags' (A19): same rules, same members."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from analysis_rows import order, ts

from crm_ml.analysis import tag_value_quadrant, value_quadrant_summary
from crm_ml.errors import ValidationError
from crm_ml.tags import apply_tags, customers_with_tag
from crm_ml.tags.definitions import save_tag_definitions
from crm_ml.tags.library import builtin_tags

AS_OF = "2024-07-01"
QUADRANT_TAGS = ["value_quadrant_a", "value_quadrant_b", "value_quadrant_c", "value_quadrant_d"]


def quadrant_definitions():
    return [d for d in builtin_tags() if d.name in QUADRANT_TAGS]


# Among the five 12-month buyers (c5 has not bought), by percentile rank > 0.5:
# AOV 10, 20 | 50, 100, 300 -> c2, c1, c3 are high; orders 1, 1 | 2, 2, 5 -> the
# two-order customers rank 0.7 on average, so c2, c3 and c4 are high frequency,
# although a median split (median 2, "high" above it) would call only c4 high.
FEATURES = pd.DataFrame(
    {
        "orders_365d": [1, 2, 2, 5, 0, 1],
        "avg_order_value": [100.0, 50.0, 300.0, 20.0, 80.0, 10.0],
    },
    index=pd.Index(["c1", "c2", "c3", "c4", "c5", "c6"], name="customer_id", dtype="str"),
).astype({"orders_365d": "int64"})


def test_quadrants_follow_the_tag_rules(store, insert):
    insert("orders", [order("o1", "c1", "2024-03-01", 100.0)])
    rated = tag_value_quadrant(store, FEATURES, AS_OF)

    assert rated.index.tolist() == ["c1", "c2", "c3", "c4", "c6"]
    assert rated["quadrant"].tolist() == [
        "value_quadrant_b",
        "value_quadrant_a",
        "value_quadrant_a",
        "value_quadrant_c",
        "value_quadrant_d",
    ]
    assert rated["orders"].tolist() == [1, 2, 2, 5, 1]
    assert rated["revenue"].tolist() == [100.0, 0.0, 0.0, 0.0, 0.0]
    assert rated.attrs["cuts"] == {"aov": [20.0], "frequency": [1.0]}
    summary = value_quadrant_summary(rated)
    assert summary.index.tolist() == QUADRANT_TAGS
    assert summary["customers"].tolist() == [2, 1, 1, 1]


def test_quadrants_match_the_applied_tags(store, insert):
    insert(
        "customer",
        [
            {"customer_id": c, "created_at": ts("2023-01-01"), "status": "active"}
            for c in FEATURES.index
        ],
    )
    apply_tags(store, FEATURES, AS_OF, definitions=quadrant_definitions())
    rated = tag_value_quadrant(store, FEATURES, AS_OF)

    for tag in QUADRANT_TAGS:
        tagged = customers_with_tag(store, tag, AS_OF).tolist()
        assert rated.index[rated["quadrant"] == tag].tolist() == tagged, tag


def test_labels_are_the_tags_labels(store):
    rated = tag_value_quadrant(store, FEATURES, AS_OF, labels="label")

    assert rated["quadrant"].cat.categories.tolist() == [
        "A类: 高客单高频",
        "B类: 高客单低频",
        "C类: 低客单高频",
        "D类: 低客单低频",
    ]


def test_a_stored_tag_rule_is_followed(store):
    stored = {d.name: d for d in quadrant_definitions()}
    stored["value_quadrant_a"] = replace(stored["value_quadrant_a"], rule="orders_365d >= 5")
    stored["value_quadrant_c"] = replace(stored["value_quadrant_c"], rule="orders_365d < 0")
    save_tag_definitions(store, stored.values())

    rated = tag_value_quadrant(store, FEATURES, AS_OF)

    assert rated.index[rated["quadrant"] == "value_quadrant_a"].tolist() == ["c4"]


def test_overlapping_rules_are_refused(store):
    stored = [replace(d, rule="orders_365d > 0") for d in quadrant_definitions()]
    save_tag_definitions(store, stored)

    with pytest.raises(ValidationError, match="value-quadrant tag rules overlap: 5 customer"):
        tag_value_quadrant(store, FEATURES, AS_OF)
    with pytest.raises(ValidationError, match="labels='title' must be 'name' or 'label'"):
        tag_value_quadrant(store, FEATURES, AS_OF, labels="title")
