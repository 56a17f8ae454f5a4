"""Customer 360 of a merged person: one person, one view, as the features count them.

c1 survives; m1 was merged into it by ``crm-ml customers merge`` (``customer_merge``)
and m0 into m1 by a source system (``customer.merged_into`` only), so m0 -> m1 -> c1.
Rows still sit under m0 and m1, as when they are imported after the merge.
"""

from __future__ import annotations

import pytest
from analysis_rows import order, ts

from crm_ml.analysis import customer_360
from crm_ml.errors import NotFoundError
from crm_ml.features import customer_features

AS_OF = "2024-07-01"


def _customer(cid: str, created: str, merged_into: str | None = None) -> dict[str, object]:
    return {
        "customer_id": cid,
        "name": "李四",
        "created_at": ts(created),
        "status": "merged" if merged_into else "active",
        "merged_into": merged_into,
        "is_member": True,
    }


def _consent(cid: str, channel: str, at: str, status: str) -> dict[str, object]:
    return {"customer_id": cid, "channel": channel, "purpose": "marketing",
            "updated_at": ts(at), "status": status}  # fmt: skip


def _identity(cid: str, kind: str, value: str, verified: bool, at: str) -> dict[str, object]:
    return {"customer_id": cid, "kind": kind, "value": value, "verified": verified,
            "created_at": ts(at)}  # fmt: skip


def _score(cid: str, probability: float) -> dict[str, object]:
    return {"model_name": "crm-churn", "as_of": ts("2024-06-01"), "customer_id": cid,
            "model_version": "1", "probability": probability, "band": "low",
            "scored_at": ts("2024-06-01")}  # fmt: skip


@pytest.fixture
def person(insert):
    """One person over three records, and someone else (c2)."""
    insert(
        "customer",
        [
            _customer("c1", "2024-03-01"),
            _customer("m1", "2024-01-01", merged_into="c1"),
            _customer("m0", "2024-02-01", merged_into="m1"),
            _customer("c2", "2024-01-01"),
        ],
    )
    insert(
        "customer_merge",
        [{"merged_id": "m1", "surviving_id": "c1", "merged_at": ts("2024-05-01"),
          "reason": "same phone"}],
    )  # fmt: skip
    insert(
        "orders",
        [
            order("o1", "c1", "2024-04-01 10:00", 100.0),
            order("o2", "m1", "2024-05-10 10:00", 300.0),  # imported after the merge
            order("o3", "m0", "2024-02-10 10:00", 50.0),
            order("x1", "c2", "2024-03-01 10:00", 999.0),
        ],
    )
    insert(
        "points_ledger",
        [
            {"entry_id": "e1", "customer_id": "c1", "posted_at": ts("2024-04-01"),
             "kind": "earn", "points": 100},
            {"entry_id": "e2", "customer_id": "m1", "posted_at": ts("2024-05-10"),
             "kind": "earn", "points": 300},
            {"entry_id": "e3", "customer_id": "m0", "posted_at": ts("2024-02-10"),
             "kind": "earn", "points": 50},
        ],
    )  # fmt: skip
    insert(
        "tier",
        [
            {"tier_id": "t1", "name": "classic", "label": "普卡", "level": 1,
             "min_spend_12m": 0.0},
            {"tier_id": "t2", "name": "gold", "label": "金卡", "level": 2,
             "min_spend_12m": 300.0},
        ],
    )  # fmt: skip
    insert(
        "tier_change",
        [
            {"customer_id": "c1", "changed_at": ts("2024-04-01"), "from_tier": None,
             "to_tier": "t1", "direction": "initial"},
            {"customer_id": "m1", "changed_at": ts("2024-06-01"), "from_tier": "t1",
             "to_tier": "t2", "direction": "up"},
        ],
    )  # fmt: skip
    insert(
        "customer_owner",
        [
            {"customer_id": "c1", "valid_from": ts("2024-03-01"), "owner_id": "A",
             "owner_name": "王经理", "valid_to": None},
            # Later, but ended before as_of: c1's open assignment is the current one.
            {"customer_id": "m1", "valid_from": ts("2024-04-15"), "owner_id": "B",
             "owner_name": "赵经理", "valid_to": ts("2024-06-01")},
        ],
    )  # fmt: skip
    insert(
        "consent",
        [
            _consent("c1", "sms", "2024-03-02", "granted"),
            _consent("m1", "sms", "2024-05-10", "withdrawn"),  # the old card withdrew later
            _consent("c1", "email", "2024-04-01", "granted"),
            _consent("m0", "email", "2024-04-01", "withdrawn"),  # same instant: the safe one
            _consent("m0", "wechat", "2024-02-02", "granted"),
        ],
    )
    insert(
        "customer_identity",
        [
            _identity("c1", "phone", "+8613812345678", False, "2024-03-01"),
            _identity("m1", "phone", "+8613812345678", True, "2024-01-01"),
            _identity("m0", "member_card", "CARD000123", True, "2024-02-01"),
        ],
    )
    insert(
        "tag_definition",
        [{"tag_id": "vip", "name": "vip", "label": "贵宾", "category": "value", "kind": "rule",
          "version": 1, "created_at": ts("2024-01-01")}],
    )  # fmt: skip
    insert(
        "customer_tag",
        [{"customer_id": "m1", "tag_id": "vip", "valid_from": ts("2024-05-15"),
          "valid_to": None, "source": "manual"}],
    )  # fmt: skip
    insert(
        "behavior_event",
        [{"event_id": "v1", "customer_id": "m0", "event_type": "page_view",
          "occurred_at": ts("2024-02-15")}],
    )  # fmt: skip
    insert(
        "campaign",
        [{"campaign_id": "k1", "name": "618", "channel": "sms", "start_at": ts("2024-06-01"),
          "end_at": ts("2024-06-30"), "control_share": 0.1}],
    )  # fmt: skip
    insert(
        "campaign_contact",
        [{"campaign_id": "k1", "customer_id": "m1", "contact_group": "treatment",
          "contacted_at": ts("2024-06-02"), "responded": False}],
    )  # fmt: skip
    # Scores stay with the id they were computed for: m1's is an old record's.
    insert("score", [_score("c1", 0.3), _score("m1", 0.9)])


def test_a_survivor_shows_every_merged_records_history(store, person):
    view = customer_360(store, "c1", AS_OF)
    assert (view.customer_id, view.requested_id) == ("c1", "c1")
    assert view.orders["order_id"].tolist() == ["o3", "o1", "o2"]
    assert view.orders["record_id"].tolist() == ["m0", "c1", "m1"]
    assert view.points["balance"].tolist() == [50, 150, 450]
    assert view.tiers["to_tier"].tolist() == ["classic", "gold"]
    assert view.owners["owner_id"].tolist() == ["A", "B"]
    assert view.owners["current"].tolist() == [True, False]
    assert view.tags[["tag", "active", "record_id"]].values.tolist() == [["vip", True, "m1"]]
    assert view.events["record_id"].tolist() == ["m0"]
    assert view.campaigns["record_id"].tolist() == ["m1"]
    # The phone both records hold is one identifier, verified because m1 verified it.
    assert view.identities[["kind", "verified"]].values.tolist() == [
        ["member_card", True],
        ["phone", True],
    ]
    assert view.scores.index.tolist() == ["crm-churn"]
    assert view.scores.loc["crm-churn", "probability"] == pytest.approx(0.3)
    profile = view.profile["value"]
    assert profile["merged_records"] == "m0, m1"
    assert profile["requested_id"] == ""
    assert (profile["tier"], profile["owner"]) == ("gold", "A 王经理")
    assert (profile["orders"], profile["revenue"], profile["points_balance"]) == (
        "3",
        "450.00",
        "450",
    )
    assert profile["created_at"] == "2024-01-01 00:00"  # the earliest record's


def test_consent_is_the_persons_latest_and_safest_decision(store, person):
    consent = customer_360(store, "c1", AS_OF).consent
    assert consent.loc["sms", "marketing"] == "withdrawn"
    assert consent.loc["email", "marketing"] == "withdrawn"
    assert consent.loc["wechat", "marketing"] == "granted"


def test_the_view_counts_what_the_features_count(store, person):
    features = customer_features(store, AS_OF).loc["c1"]
    view = customer_360(store, "c1", AS_OF)
    revenue = (view.orders["net_amount"] - view.orders["refund_amount"]).sum()
    assert features["orders_lifetime"] == len(view.orders)
    assert features["revenue_lifetime"] == pytest.approx(revenue)
    assert features["points_balance"] == view.points["balance"].iloc[-1]
    assert features["tier_level"] == 2.0  # gold, the last tier the view shows
    assert features["has_owner"] == view.owners["current"].sum() == 1
    consent = view.consent["marketing"].eq("granted").astype(int)
    for channel in ("sms", "email", "wechat"):
        assert features[f"consent_{channel}_marketing"] == consent[channel], channel


@pytest.mark.parametrize("asked", ["m0", "m1"])
def test_a_merged_away_id_shows_the_person_it_was_merged_into(store, person, asked):
    view = customer_360(store, asked, AS_OF)
    survivor = customer_360(store, "c1", AS_OF)
    assert (view.customer_id, view.requested_id) == ("c1", asked)
    assert view.profile.loc["requested_id", "value"] == f"{asked} (merged into c1)"
    assert view.orders.equals(survivor.orders)
    assert view.profile.drop("requested_id").equals(survivor.profile.drop("requested_id"))


def test_a_survivor_created_after_as_of_exists_through_its_merged_records(store, insert):
    insert(
        "customer",
        [_customer("new", "2024-08-01"), _customer("old", "2024-01-01", merged_into="new")],
    )
    insert("orders", [order("o1", "old", "2024-06-01 10:00", 80.0)])
    view = customer_360(store, "new", AS_OF)
    assert view.orders["order_id"].tolist() == ["o1"]
    assert "new" in customer_features(store, AS_OF).index
    with pytest.raises(NotFoundError, match="'new' was created at 2024-01-01 00:00"):
        customer_360(store, "old", "2023-12-01")


def test_a_record_merged_into_a_missing_customer(store, insert):
    insert("customer", [_customer("m9", "2024-01-01", merged_into="gone")])
    with pytest.raises(NotFoundError, match="'m9' was merged into 'gone', which is not in"):
        customer_360(store, "m9", AS_OF)
