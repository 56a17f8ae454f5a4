"""A merged record's history counts as its survivor's in every analysis, as in the features."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_rows import order, ts

from crm_ml.analysis import (
    cohort_table,
    customer_risk,
    customer_value,
    points_liability,
    revenue_12m,
    revenue_at_risk,
)
from crm_ml.analysis._read import read_owners
from crm_ml.errors import ConfigError

AS_OF = "2026-01-01"


def customer(cid: str, merged_into: str | None = None) -> dict:
    return {
        "customer_id": cid,
        "created_at": ts("2024-01-01"),
        "status": "merged" if merged_into else "active",
        "merged_into": merged_into,
        "is_member": True,
    }


@pytest.fixture
def merged_store(store, insert):
    """0002 was merged into 0001 by the source system; 0003 is someone else."""
    insert("customer", [customer("0001"), customer("0002", "0001"), customer("0003")])
    insert(
        "orders",
        [
            order("o1", "0001", "2025-12-01", 100.0),
            order("o2", "0002", "2025-03-10", 1000.0),
            order("o3", "0002", "2025-04-10", 1000.0),
            order("o4", "0002", "2025-05-10", 1000.0),
            order("o5", "0003", "2025-12-01", 50.0),
        ],
    )
    insert(
        "tier",
        [
            {
                "tier_id": "T1",
                "name": "normal",
                "label": "普通会员",
                "level": 1,
                "min_spend_12m": 0,
            },
            {"tier_id": "T3", "name": "gold", "label": "金卡会员", "level": 3, "min_spend_12m": 1},
        ],
    )
    insert(
        "tier_change",
        [
            {"customer_id": "0001", "changed_at": ts("2025-01-01"), "to_tier": "T1",
             "direction": "initial"},
            {"customer_id": "0002", "changed_at": ts("2025-06-01"), "to_tier": "T3",
             "direction": "initial"},
        ],
    )  # fmt: skip
    insert(
        "customer_owner",
        [{"customer_id": "0002", "owner_id": "o1", "owner_name": "王芳",
          "valid_from": ts("2025-01-01"), "valid_to": None}],
    )  # fmt: skip
    insert(
        "points_ledger",
        [
            {"entry_id": "p1", "customer_id": "0002", "posted_at": ts("2025-03-10"),
             "kind": "earn", "points": 500, "expires_at": None},
            {"entry_id": "p2", "customer_id": "0001", "posted_at": ts("2025-12-01"),
             "kind": "redeem", "points": -200, "expires_at": None},
        ],
    )  # fmt: skip
    insert(
        "score",
        [
            {"model_name": "crm-churn", "as_of": ts(AS_OF), "customer_id": cid,
             "model_version": "1", "probability": 0.5, "band": "high", "scored_at": ts(AS_OF)}
            for cid in ["0001", "0003"]
        ],
    )  # fmt: skip
    return store


def test_revenue_12m_counts_the_merged_records_orders_for_the_survivor(merged_store):
    with merged_store.connect() as conn:
        revenue = revenue_12m(conn, ts(AS_OF))
    assert revenue.to_dict() == {"0001": 3100.0, "0003": 50.0}


def test_customer_value_and_cohorts_see_one_person(merged_store):
    value = customer_value(merged_store, AS_OF)
    assert value.index.tolist() == ["0001", "0003"]
    assert value["orders"].tolist() == [4, 1]
    assert value["revenue"].tolist() == [3100.0, 50.0]
    cohorts = cohort_table(merged_store, AS_OF, tz="UTC")
    first = cohorts.groupby("cohort")["customers"].first()
    # 0001's first purchase is the merged card's, in March; 0003 first bought in December.
    assert first.to_dict() == {pd.Period("2025-03", "M"): 1, pd.Period("2025-12", "M"): 1}


def test_points_liability_nets_the_merged_records_points(merged_store):
    points = points_liability(merged_store, AS_OF)
    assert points.index.tolist() == ["0001"]
    assert points["points_balance"].tolist() == [300]


def test_customer_risk_uses_the_persons_revenue_tier_and_owner(merged_store):
    risk = customer_risk(merged_store, AS_OF, labels="label").set_index("customer_id")
    assert risk.loc["0001", "revenue_12m"] == 3100.0
    assert risk.loc["0001", "revenue_at_risk"] == 1550.0
    assert risk["tier"].to_dict() == {"0001": "金卡会员", "0003": "(none)"}
    assert risk["owner_id"].to_dict() == {"0001": "o1", "0003": "(unassigned)"}
    by_tier = revenue_at_risk(risk.reset_index(), by="tier")
    assert by_tier.index.tolist() == ["金卡会员", "(none)"]
    assert read_owners(merged_store, pd.Timestamp(AS_OF))["customer_id"].tolist() == ["0001"]


def test_customer_risk_refuses_unknown_tier_labels(merged_store):
    with pytest.raises(ConfigError, match=r"labels='title' must be one of tier_id, name, label"):
        customer_risk(merged_store, AS_OF, labels="title")


def test_revenue_at_risk_orders_equal_groups_by_name():
    owners = [f"AM{i:02d}" for i in range(30)]
    risk = pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in range(30)],
            "owner_id": owners,
            "owner_name": ["经理"] * 30,
            "p_churn": [0.5] * 30,
            "revenue_12m": [100.0] * 10 + [200.0] * 10 + [100.0] * 10,
        }
    )
    risk["revenue_at_risk"] = risk["p_churn"] * risk["revenue_12m"]
    summary = revenue_at_risk(risk, by="owner")
    expected = owners[10:20] + owners[:10] + owners[20:]
    assert summary.index.get_level_values("owner_id").tolist() == expected
