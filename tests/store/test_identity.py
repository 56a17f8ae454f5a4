from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy import select

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.store import rekey
from crm_ml.store.identity import (
    STRONG_REASON,
    choose_survivor,
    mask_value,
    merge_customers,
    plan_merges,
    weak_matches,
)
from crm_ml.store.schema import Base

AT = datetime(2024, 1, 1, 9, 0)
P1, P2, P3 = "+8613800138000", "+8613900139000", "+8613700137000"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def insert(store, table: str, rows: list[dict]) -> None:
    with store.begin() as conn:
        conn.execute(Base.metadata.tables[table].insert(), rows)


def rows(store, table: str) -> list[tuple]:
    t = Base.metadata.tables[table]
    with store.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(t)))


def pointers(store) -> list[tuple]:
    t = Base.metadata.tables["customer"]
    with store.connect() as conn:
        query = select(t.c.customer_id, t.c.status, t.c.merged_into).order_by(t.c.customer_id)
        return [tuple(r) for r in conn.execute(query)]


def snapshot(store) -> dict[str, list[tuple]]:
    return {name: rows(store, name) for name in Base.metadata.tables}


def customer(cid: str, created: str, **extra) -> dict:
    base = {
        "customer_id": cid,
        "name": None,
        "is_member": False,
        "member_since": None,
        "status": "active",
        "merged_into": None,
        "created_at": ts(created),
    }
    return base | extra


def identity(cid: str, kind: str, value: str, verified: bool, created: str = "2023-01-01"):
    return {
        "customer_id": cid,
        "kind": kind,
        "value": value,
        "verified": verified,
        "created_at": ts(created),
    }


def order(oid: str, cid: str, when: str, amount: float = 100.0) -> dict:
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": ts(when),
        "channel": "online",
        "gross_amount": amount,
        "discount_amount": 0.0,
        "net_amount": amount,
    }


def plan_frame(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["merged_id", "surviving_id"])


# --------------------------------------------------------------------------- planning


@pytest.fixture
def duplicates(store):
    """C1-C2 share a verified phone, C2-C3 a member card; C4/C5/C6 only weak evidence."""
    insert(
        store,
        "customer",
        [
            customer("C1", "2023-01-01"),
            customer("C2", "2023-03-01"),
            customer("C3", "2023-02-01"),
            customer("C4", "2023-01-01"),
            customer("C5", "2023-01-01"),
            customer("C6", "2023-01-01"),
        ],
    )
    insert(
        store,
        "customer_identity",
        [
            identity("C1", "phone", P1, True),
            identity("C2", "phone", P1, True),
            identity("C2", "member_card", "M0001", False),
            identity("C3", "member_card", "M0001", True),
            identity("C4", "phone", P2, False),
            identity("C5", "phone", P2, True),
            identity("C1", "email", "wang@example.com", True),
            identity("C4", "email", "wang@example.com", False),
            identity("C5", "phone", P3, True),
            identity("C6", "phone", P3, True),
        ],
    )
    return store


def test_plan_merges_links_chains_of_strong_evidence_to_the_earliest_customer(duplicates):
    plan = plan_merges(duplicates)
    assert plan.to_dict("records") == [
        {
            "merged_id": "C2",
            "surviving_id": "C1",
            "evidence": "member_card ****01; phone +86138****8000 (verified)",
            "reason": STRONG_REASON,
        },
        {
            "merged_id": "C3",
            "surviving_id": "C1",
            "evidence": "member_card ****01",
            "reason": STRONG_REASON,
        },
        {
            "merged_id": "C6",
            "surviving_id": "C5",
            "evidence": "phone +86137****7000 (verified)",
            "reason": STRONG_REASON,
        },
    ]


def test_weak_matches_flag_shared_email_and_unverified_phone(duplicates):
    weak = weak_matches(duplicates)
    assert weak.to_dict("records") == [
        {
            "kind": "email",
            "evidence": "w***@example.com",
            "customer_ids": "C1,C4",
            "n_customers": 2,
            "reason": "shared email",
        },
        {
            "kind": "phone",
            "evidence": "+86139****9000",
            "customer_ids": "C4,C5",
            "n_customers": 2,
            "reason": "shared phone, not verified by every holder",
        },
    ]


def test_weak_matches_skip_people_already_linked_by_strong_evidence(store):
    insert(store, "customer", [customer("A", "2023-01-01"), customer("B", "2023-01-02")])
    insert(
        store,
        "customer_identity",
        [
            identity("A", "member_card", "CARD-1", True),
            identity("B", "member_card", "CARD-1", True),
            identity("A", "email", "a@example.com", True),
            identity("B", "email", "a@example.com", True),
        ],
    )
    assert weak_matches(store).empty
    assert list(weak_matches(store).columns) == [
        "kind",
        "evidence",
        "customer_ids",
        "n_customers",
        "reason",
    ]


def test_empty_store_plans_nothing(store):
    plan = plan_merges(store)
    assert plan.empty
    assert list(plan.columns) == ["merged_id", "surviving_id", "evidence", "reason"]


def test_survivor_is_earliest_then_most_orders_then_smallest_id():
    frame = pd.DataFrame(
        {
            "created_at": [ts("2023-01-02"), ts("2023-01-01"), ts("2023-01-01"), ts("2023-01-01")],
            "orders": [9, 1, 3, 3],
        },
        index=pd.Index(["A", "D", "C", "B"], name="customer_id"),
    )
    assert choose_survivor(frame) == "B"
    assert choose_survivor(frame.drop(index=["B", "C"])) == "D"


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        ("phone", "+8613800138000", "+86138****8000"),
        ("email", "wang.fang@example.com", "w***@example.com"),
        ("wechat", "wx_ab", "****ab"),
        ("member_card", "123", "***"),
    ],
)
def test_mask_value(kind, value, masked):
    assert mask_value(kind, value) == masked


# --------------------------------------------------------------------------- merging


@pytest.fixture
def history(store):
    """Survivor S and duplicate D with colliding and non-colliding history in every table."""
    insert(
        store,
        "customer",
        [
            customer("S", "2023-01-01", city="上海"),
            customer(
                "D",
                "2022-12-01",
                name="王芳",
                city="北京",
                is_member=True,
                member_since=ts("2023-03-01"),
            ),
        ],
    )
    insert(store, "orders", [order("O1", "S", "2023-05-01"), order("O2", "D", "2023-05-02")])
    insert(
        store,
        "points_ledger",
        [
            {
                "entry_id": "E1",
                "customer_id": "D",
                "posted_at": ts("2023-05-02"),
                "kind": "earn",
                "points": 100,
            }
        ],
    )
    insert(
        store,
        "customer_identity",
        [
            identity("S", "phone", P1, True, "2023-01-05"),
            identity("D", "phone", P1, True, "2023-03-05"),
            identity("S", "email", "f@example.com", False, "2023-02-01"),
            identity("D", "email", "f@example.com", True, "2023-01-10"),
            identity("D", "wechat", "wx_dup", False, "2023-03-05"),
        ],
    )
    insert(
        store,
        "consent",
        [
            _consent("S", "sms", "2023-04-01", "granted"),
            _consent("D", "sms", "2023-04-01", "withdrawn"),
            _consent("D", "email", "2023-04-02", "granted"),
        ],
    )
    insert(
        store,
        "custom_field_value",
        [
            {"customer_id": "S", "field_id": "F1", "value": "a", "updated_at": ts("2023-05-01")},
            {"customer_id": "D", "field_id": "F1", "value": "b", "updated_at": ts("2023-06-01")},
            {"customer_id": "D", "field_id": "F2", "value": "c", "updated_at": ts("2023-06-01")},
        ],
    )
    insert(
        store,
        "customer_owner",
        [
            _owner("S", "2023-01-01", None, "A"),
            _owner("D", "2023-02-01", None, "B"),
            _owner("D", "2022-01-01", "2022-12-31", "B"),
        ],
    )
    insert(
        store,
        "campaign_contact",
        [
            _contact("S", "treatment", "2023-04-01", None, None),
            _contact("D", "control", "2023-04-02", "2023-04-05", "O2"),
        ],
    )
    insert(
        store,
        "tier_change",
        [
            _tier("S", "2023-06-01", "silver"),
            _tier("D", "2023-06-01", "gold"),
            _tier("D", "2023-07-01", "gold"),
        ],
    )
    insert(
        store,
        "customer_tag",
        [
            {
                "customer_id": "D",
                "tag_id": "T1",
                "valid_from": ts("2023-01-01"),
                "valid_to": None,
                "source": "manual",
                "actor": "ops",
                "reason": None,
            }
        ],
    )
    insert(
        store,
        "score",
        [
            {
                "model_name": "churn",
                "as_of": ts("2023-06-01"),
                "customer_id": "D",
                "model_version": "1",
                "probability": 0.5,
                "band": "medium",
                "reasons": None,
                "scored_at": ts("2023-06-01"),
            }
        ],
    )
    return store


def _consent(cid, channel, when, status):
    return {
        "customer_id": cid,
        "channel": channel,
        "purpose": "marketing",
        "updated_at": ts(when),
        "status": status,
        "source": "pos",
    }


def _owner(cid, start, end, owner):
    return {
        "customer_id": cid,
        "valid_from": ts(start),
        "valid_to": ts(end) if end else None,
        "owner_id": owner,
        "owner_name": None,
    }


def _contact(cid, group, contacted, responded_at, order_id):
    return {
        "campaign_id": "K1",
        "customer_id": cid,
        "contact_group": group,
        "contacted_at": ts(contacted),
        "responded": responded_at is not None,
        "responded_at": ts(responded_at) if responded_at else None,
        "order_id": order_id,
    }


def _tier(cid, when, to_tier):
    return {
        "customer_id": cid,
        "changed_at": ts(when),
        "from_tier": None,
        "to_tier": to_tier,
        "direction": "initial",
        "reason": None,
    }


def test_merge_moves_history_and_resolves_collisions(history):
    result = merge_customers(history, plan_frame(("D", "S")), at=AT, actor="steward")
    assert result.merged == 1
    assert not result.dry_run
    assert [r[:2] for r in rows(history, "orders")] == [("O1", "S"), ("O2", "S")]
    assert [r[:2] for r in rows(history, "points_ledger")] == [("E1", "S")]
    assert rows(history, "customer_identity") == [
        ("S", "email", "f@example.com", True, ts("2023-01-10")),
        ("S", "phone", P1, True, ts("2023-01-05")),
        ("S", "wechat", "wx_dup", False, ts("2023-03-05")),
    ]
    # Same instant, opposite decisions: the protective one is kept; other history moves.
    assert [(r[0], r[1], r[4]) for r in rows(history, "consent")] == [
        ("S", "email", "granted"),
        ("S", "sms", "withdrawn"),
    ]
    assert [(r[0], r[1], r[2]) for r in rows(history, "custom_field_value")] == [
        ("S", "F1", "b"),
        ("S", "F2", "c"),
    ]
    # The overlapping open assignment stays on D; the old, disjoint one moves.
    assert [(r[0], r[1], r[2]) for r in rows(history, "customer_owner")] == [
        ("D", ts("2023-02-01"), "B"),
        ("S", ts("2022-01-01"), "B"),
        ("S", ts("2023-01-01"), "A"),
    ]
    assert rows(history, "campaign_contact") == [
        ("K1", "S", "treatment", ts("2023-04-01"), True, ts("2023-04-05"), "O2")
    ]
    assert [(r[0], r[1], r[3]) for r in rows(history, "tier_change")] == [
        ("S", ts("2023-06-01"), "silver"),
        ("S", ts("2023-07-01"), "gold"),
    ]
    assert [r[:2] for r in rows(history, "customer_tag")] == [("S", "T1")]
    assert [r[2] for r in rows(history, "score")] == ["D"]


def test_merge_marks_customer_records_merge_and_fills_profile(history):
    result = merge_customers(history, plan_frame(("D", "S")), at=AT, actor="steward")
    customers = {r[0]: r for r in rows(history, "customer")}
    t = Base.metadata.tables["customer"].columns.keys()
    s, d = dict(zip(t, customers["S"], strict=True)), dict(zip(t, customers["D"], strict=True))
    assert (d["status"], d["merged_into"]) == ("merged", "S")
    assert (s["status"], s["name"], s["city"]) == ("active", "王芳", "上海")
    assert (s["is_member"], s["member_since"], s["created_at"]) == (
        True,
        ts("2023-03-01"),
        ts("2022-12-01"),
    )
    assert rows(history, "customer_merge") == [("D", "S", AT, "manual merge", "steward")]
    changes = [(r[0], r[2], r[3], r[4]) for r in rows(history, "customer_change")]
    assert changes == [
        ("merge:D:created_at", "created_at", "2023-01-01 00:00:00", "2022-12-01 00:00:00"),
        ("merge:D:is_member", "is_member", "False", "True"),
        ("merge:D:member_since", "member_since", None, "2023-03-01 00:00:00"),
        ("merge:D:name", "name", None, "王芳"),
    ]
    assert result.tables.loc["consent"].to_dict() == {"moved": 1, "combined": 1, "left": 0}
    assert result.tables.loc["customer_owner"].to_dict() == {"moved": 1, "combined": 0, "left": 1}
    assert "score" not in result.tables.index


def test_merge_twice_changes_nothing(history):
    merge_customers(history, plan_frame(("D", "S")), at=AT, actor="steward")
    before = snapshot(history)
    again = merge_customers(history, plan_frame(("D", "S")), at=AT, actor="steward")
    assert snapshot(history) == before
    assert again.merged == 0
    assert not again.changed
    assert again.merges["action"].tolist() == ["already merged"]
    assert again.summary().endswith("Nothing to change.")
    assert plan_merges(history).empty


def test_dry_run_reports_the_same_and_writes_nothing(history):
    before = snapshot(history)
    dry = merge_customers(history, plan_frame(("D", "S")), at=AT, actor="steward", dry_run=True)
    assert snapshot(history) == before
    real = merge_customers(history, plan_frame(("D", "S")), at=AT, actor="steward")
    pd.testing.assert_frame_equal(dry.tables, real.tables)
    pd.testing.assert_frame_equal(dry.profile_changes, real.profile_changes)
    summary = dry.summary()
    assert summary.startswith("Dry run: would merge 1 customers into 1 (0 already merged).")
    assert "  D -> S  (manual merge)" in summary
    assert "  orders: 1 moved, 0 combined, 0 left" in summary


def test_planned_merges_apply_end_to_end(duplicates):
    result = merge_customers(duplicates, plan_merges(duplicates), at=AT, actor="job")
    assert result.merged == 3
    assert plan_merges(duplicates).empty
    merged = rows(duplicates, "customer_merge")
    assert [(r[0], r[1]) for r in merged] == [("C2", "C1"), ("C3", "C1"), ("C6", "C5")]
    assert merged[1][3] == f"{STRONG_REASON}: member_card ****01"


def test_empty_plan_changes_nothing(store):
    result = merge_customers(store, plan_merges(store), at=AT, actor="job")
    assert (result.merged, result.changed) == (0, False)
    assert result.summary() == "merged 0 customers into 0 (0 already merged).\nNothing to change."


def test_chain_in_one_plan_ends_at_the_last_survivor(store):
    insert(store, "customer", [customer(c, "2023-01-01") for c in ("A", "B", "C")])
    insert(store, "orders", [order("OA", "A", "2023-02-01"), order("OB", "B", "2023-02-02")])
    result = merge_customers(store, plan_frame(("A", "B"), ("B", "C")), at=AT, actor="x")
    assert result.merges["surviving_id"].tolist() == ["C", "C"]
    assert [r[:2] for r in rows(store, "orders")] == [("OA", "C"), ("OB", "C")]
    assert pointers(store) == [("A", "merged", "C"), ("B", "merged", "C"), ("C", "active", None)]


def test_merging_a_survivor_later_repoints_its_earlier_merges(store):
    insert(store, "customer", [customer(c, "2023-01-01") for c in ("X", "A", "C")])
    merge_customers(store, plan_frame(("X", "A")), at=AT, actor="x")
    insert(store, "orders", [order("late", "X", "2023-03-01")])  # arrived after the merge
    later = datetime(2024, 2, 1)
    merge_customers(store, plan_frame(("A", "C")), at=later, actor="x")
    assert pointers(store) == [("A", "merged", "C"), ("C", "active", None), ("X", "merged", "C")]
    assert [r[:2] for r in rows(store, "orders")] == [("late", "C")]
    assert [r[:2] for r in rows(store, "customer_merge")] == [("A", "C"), ("X", "A")]
    # A plan naming the old target of X follows the chain instead of failing.
    assert merge_customers(store, plan_frame(("X", "A")), at=later, actor="x").merged == 0


def test_plan_into_a_merged_customer_follows_its_pointer(store):
    insert(store, "customer", [customer(c, "2023-01-01") for c in ("A", "B", "C")])
    merge_customers(store, plan_frame(("B", "C")), at=AT, actor="x")
    result = merge_customers(store, plan_frame(("A", "B")), at=AT, actor="x")
    assert result.merges[["merged_id", "surviving_id"]].values.tolist() == [["A", "C"]]


def test_rekey_rules_cover_every_table_with_a_customer_id():
    covered = set(rekey.PLAIN_TABLES) | set(rekey.KEYED_TABLES) | set(rekey.KEPT_TABLES)
    covered.add(rekey.OWNER_TABLE)
    with_customer = {n for n, t in Base.metadata.tables.items() if "customer_id" in t.c}
    assert with_customer <= covered


# --------------------------------------------------------------------------- errors


def test_plan_without_columns_is_refused(store):
    with pytest.raises(ValidationError, match=r"lacks column.*surviving_id"):
        merge_customers(store, pd.DataFrame({"merged_id": ["A"]}), at=AT, actor="x")


def test_blank_ids_are_refused(store):
    plan = pd.DataFrame({"merged_id": ["A"], "surviving_id": [None]})
    with pytest.raises(ValidationError, match="row 0 has a blank"):
        merge_customers(store, plan, at=AT, actor="x")


def test_self_merge_is_refused(store):
    with pytest.raises(ValidationError, match="merges customer A into itself"):
        merge_customers(store, plan_frame(("A", "A")), at=AT, actor="x")


def test_merging_one_customer_into_two_is_refused(store):
    with pytest.raises(ValidationError, match=r"A into several customers \(B, C\)"):
        merge_customers(store, plan_frame(("A", "B"), ("A", "C")), at=AT, actor="x")


def test_cycle_is_refused(store):
    insert(store, "customer", [customer(c, "2023-01-01") for c in ("A", "B")])
    with pytest.raises(ValidationError, match=r"cycle \(B -> A -> B\)"):
        merge_customers(store, plan_frame(("A", "B"), ("B", "A")), at=AT, actor="x")


def test_unknown_customer_is_refused(store):
    insert(store, "customer", [customer("A", "2023-01-01")])
    with pytest.raises(NotFoundError, match=r"1 customer.*not in the store: Z"):
        merge_customers(store, plan_frame(("A", "Z")), at=AT, actor="x")


def test_contradicting_an_earlier_merge_is_refused(store):
    insert(store, "customer", [customer(c, "2023-01-01") for c in ("A", "B", "C")])
    merge_customers(store, plan_frame(("A", "B")), at=AT, actor="x")
    with pytest.raises(ValidationError, match=r"A was already merged into B.*merge B into C"):
        merge_customers(store, plan_frame(("A", "C")), at=AT, actor="x")


def test_bad_timestamp_is_refused(store):
    with pytest.raises(ValidationError, match="at='yesterday' is not a timestamp"):
        merge_customers(store, plan_frame(("A", "B")), at="yesterday", actor="x")
