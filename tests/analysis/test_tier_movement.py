from __future__ import annotations

import numpy as np
import pytest
from analysis_rows import ts

from crm_ml.analysis import tier_movement, tier_movement_summary
from crm_ml.errors import ConfigError

DATE_A, DATE_B = "2024-02-01", "2024-05-01"


def change(customer_id, at, from_tier, to_tier, direction):
    return {
        "customer_id": customer_id,
        "changed_at": ts(at),
        "from_tier": from_tier,
        "to_tier": to_tier,
        "direction": direction,
    }


def tier(tier_id, name, label, level, min_spend):
    return {
        "tier_id": tier_id,
        "name": name,
        "label": label,
        "level": level,
        "min_spend_12m": min_spend,
    }


@pytest.fixture
def tier_store(store, insert):
    insert(
        "tier",
        [
            tier("t3", "钻石", None, 3, 20000.0),
            tier("t1", "银卡", "银卡会员", 1, 0.0),
            tier("t2", "金卡", None, 2, 5000.0),
        ],
    )
    insert(
        "tier_change",
        [
            change("x", "2024-01-01", None, "t1", "initial"),
            change("x", "2024-03-01", "t1", "t2", "up"),
            change("y", "2024-01-15", None, "t2", "initial"),
            change("y", "2024-05-01", "t2", "t1", "down"),  # at date_b: not yet
            change("z", "2024-02-01", None, "t1", "initial"),  # at date_a: no tier then
            change("w", "2024-01-01", None, "t3", "initial"),
            change("w", "2024-04-01", "t3", "t2", "down"),
            change("v", "2024-05-02", None, "t1", "initial"),  # after date_b
        ],
    )
    return store


def test_movement_matrix_counts_customers(tier_store):
    matrix = tier_movement(tier_store, DATE_A, DATE_B)

    order = ["(none)", "t1", "t2", "t3"]
    assert matrix.index.tolist() == order
    assert matrix.columns.tolist() == order
    assert matrix.index.name == "tier_a"
    assert matrix.columns.name == "tier_b"
    expected = [
        [0, 1, 0, 0],  # z joined t1
        [0, 0, 1, 0],  # x t1 -> t2
        [0, 0, 1, 0],  # y stays t2 (its downgrade is at date_b)
        [0, 0, 1, 0],  # w t3 -> t2
    ]
    np.testing.assert_array_equal(matrix.to_numpy(), expected)


def test_movement_with_names_and_shares(tier_store):
    matrix = tier_movement(tier_store, DATE_A, DATE_B, normalize=True, labels="name")

    assert matrix.index.tolist() == ["(none)", "银卡", "金卡", "钻石"]
    assert matrix.loc["银卡", "金卡"] == 1.0
    assert matrix.loc["金卡"].sum() == 1.0


def test_movement_with_display_labels(tier_store):
    matrix = tier_movement(tier_store, DATE_A, DATE_B, labels="label")

    # A tier without a label keeps its name.
    assert matrix.columns.tolist() == ["(none)", "银卡会员", "金卡", "钻石"]


def test_movement_summary(tier_store):
    summary = tier_movement_summary(tier_movement(tier_store, DATE_A, DATE_B))

    assert summary["customers"].tolist() == [1, 1, 1, 1]
    assert summary["new"].tolist() == [1, 0, 0, 0]
    assert summary["upgraded"].tolist() == [0, 1, 0, 0]
    assert summary["unchanged"].tolist() == [0, 0, 1, 0]
    assert summary["downgraded"].tolist() == [0, 0, 0, 1]
    np.testing.assert_array_equal(summary["upgrade_rate"], [np.nan, 1.0, 0.0, 0.0])


def test_dates_must_be_in_order(tier_store):
    with pytest.raises(ConfigError, match="must be before date_b"):
        tier_movement(tier_store, DATE_B, DATE_A)
    with pytest.raises(ConfigError, match="labels='title' must be 'tier_id', 'name' or 'label'"):
        tier_movement(tier_store, DATE_A, DATE_B, labels="title")
