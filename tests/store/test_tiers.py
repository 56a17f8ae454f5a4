from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy import select

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store.loyalty import TierLevel, TierPolicy, apply_tier_changes, evaluate_tiers
from crm_ml.store.schema import Base
from crm_ml.store.tiers import window_start

AS_OF = datetime(2024, 7, 1)
TIERS = [
    {"tier_id": "T0", "name": "classic", "level": 0, "min_spend_12m": 0.0},
    {"tier_id": "T1", "name": "silver", "level": 1, "min_spend_12m": 1000.0},
    {"tier_id": "T2", "name": "gold", "level": 2, "min_spend_12m": 2000.0},
]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def insert(store, table: str, rows: list[dict]) -> None:
    with store.begin() as conn:
        conn.execute(Base.metadata.tables[table].insert(), rows)


def tier_changes(store) -> list[tuple]:
    t = Base.metadata.tables["tier_change"]
    with store.connect() as conn:
        query = select(t.c.customer_id, t.c.changed_at, t.c.from_tier, t.c.to_tier, t.c.direction)
        return sorted(tuple(r) for r in conn.execute(query))


def customer(cid, member=True, status="active", created="2023-01-01", since=None):
    return {
        "customer_id": cid,
        "is_member": member,
        "member_since": ts(since) if since else None,
        "status": status,
        "merged_into": "M1" if status == "merged" else None,
        "created_at": ts(created),
    }


def order(oid, cid, when, amount):
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": ts(when),
        "channel": "offline",
        "gross_amount": amount,
        "discount_amount": 0.0,
        "net_amount": amount,
    }


def item(oid, amount, refund=0.0, refunded=None):
    return {
        "order_id": oid,
        "line_no": 1,
        "product_id": "P1",
        "quantity": 1,
        "amount": amount,
        "discount_amount": 0.0,
        "refund_amount": refund,
        "refunded_at": ts(refunded) if refunded else None,
    }


@pytest.fixture
def shop(store):
    insert(store, "tier", TIERS)
    insert(
        store,
        "customer",
        [
            customer("M1"),
            customer("M2"),
            customer("M3"),
            customer("M4", since="2024-08-01"),  # joins after as_of
            customer("N1", member=False),
            customer("OLD", status="merged"),
            customer("NEW", created="2024-07-01"),  # created at as_of: not yet a customer
        ],
    )
    insert(
        store,
        "orders",
        [
            order("A1", "M1", "2023-07-01", 1200.0),  # first instant of the window: counts
            order("A2", "M1", "2023-06-30 23:59:59", 5000.0),  # before the window
            order("A3", "M1", "2024-07-01", 5000.0),  # at as_of: not yet
            order("B1", "M2", "2024-03-01", 2500.0),
            order("C1", "N1", "2024-03-01", 3000.0),
        ],
    )
    insert(
        store,
        "order_item",
        [
            item("B1", 2500.0, refund=600.0, refunded="2024-06-30"),
            item("A1", 1200.0, refund=1200.0, refunded="2024-07-01"),  # refunded at as_of
        ],
    )
    return store


# --------------------------------------------------------------------------- policy


def test_policy_sorts_by_level_and_assigns_at_thresholds():
    policy = TierPolicy.from_records(list(reversed(TIERS)))
    assert [t.tier_id for t in policy.tiers] == ["T0", "T1", "T2"]
    spend = pd.Series([0.0, 999.99, 1000.0, 1999.0, 2000.0, 1e9], index=list("abcdef"))
    assigned = policy.assign(spend)
    assert assigned["tier_id"].tolist() == ["T0", "T0", "T1", "T1", "T2", "T2"]
    assert assigned["tier_level"].tolist() == [0, 0, 1, 1, 2, 2]
    assert str(assigned["tier_level"].dtype) == "int64"


def test_policy_from_the_store(shop):
    policy = TierPolicy.from_store(shop)
    assert policy.tiers[1] == TierLevel("T1", "silver", 1, 1000.0, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({2: {"min_spend_12m": 1000.0}}, "T1 and T2 have the same min_spend_12m 1000.0"),
        ({2: {"min_spend_12m": 500.0}}, r"T2 \(level 2\) starts at 500.0, below T1"),
        ({2: {"level": 1}}, "T1 and T2 have the same level 1"),
        ({2: {"tier_id": "T1"}}, "T1 and T1 have the same tier_id"),
        ({0: {"min_spend_12m": 100.0}}, "lowest tier T0 starts at 100.0; it must start at 0"),
        ({1: {"min_spend_12m": -1.0}}, "T1 has min_spend_12m=-1.0"),
    ],
)
def test_inconsistent_policies_are_config_errors(change, message):
    records = [dict(t) for t in TIERS]
    for position, values in change.items():
        records[position].update(values)
    with pytest.raises(ConfigError, match=message):
        TierPolicy.from_records(records)


def test_empty_policy_and_missing_fields(store):
    with pytest.raises(ConfigError, match="No tiers are defined"):
        TierPolicy.from_store(store)
    with pytest.raises(ConfigError, match="lacks min_spend_12m"):
        TierPolicy.from_records([{"tier_id": "T0", "name": "x", "level": 0}])


# --------------------------------------------------------------------------- evaluation


def test_window_start_is_twelve_calendar_months_earlier():
    assert window_start(AS_OF) == datetime(2023, 7, 1)
    assert window_start(datetime(2024, 2, 29)) == datetime(2023, 2, 28)


def test_evaluate_tiers_from_rolling_net_spend(shop):
    tiers = evaluate_tiers(shop, AS_OF)
    assert tiers.index.tolist() == ["M1", "M2", "M3"]
    assert tiers["net_spend_12m"].tolist() == [1200.0, 1900.0, 0.0]
    assert tiers["tier_id"].tolist() == ["T1", "T1", "T0"]
    assert list(tiers.columns) == ["net_spend_12m", "tier_id", "tier_name", "tier_level"]
    assert tiers.index.name == "customer_id"


def test_evaluate_tiers_for_all_customers_with_a_given_policy(shop):
    policy = TierPolicy.from_records(
        [TierLevel("base", "base", 0, 0.0), TierLevel("top", "top", 1, 1500.0)]
    )
    tiers = evaluate_tiers(shop, AS_OF, policy=policy, members_only=False)
    assert tiers["tier_id"].to_dict() == {
        "M1": "base",
        "M2": "top",
        "M3": "base",
        "M4": "base",
        "N1": "top",
    }


def test_refunds_are_counted_from_their_refund_date(shop):
    later = evaluate_tiers(shop, "2024-07-02")
    assert later.loc["M1", "net_spend_12m"] == 5000.0  # A1 left the window, A3 entered


# --------------------------------------------------------------------------- recording moves


def moved(frame: pd.DataFrame) -> list[list]:
    columns = ["customer_id", "from_tier", "to_tier", "direction"]
    return frame[columns].fillna("-").values.tolist()


def test_apply_records_initial_then_moves_and_is_idempotent(shop):
    first = apply_tier_changes(shop, AS_OF)
    assert moved(first) == [
        ["M1", "-", "T1", "initial"],
        ["M2", "-", "T1", "initial"],
        ["M3", "-", "T0", "initial"],
    ]
    assert first["changed_at"].tolist() == [pd.Timestamp(AS_OF)] * 3
    assert apply_tier_changes(shop, AS_OF).empty
    insert(shop, "orders", [order("D1", "M3", "2024-08-01", 2500.0)])
    later = datetime(2024, 9, 1)
    moves = apply_tier_changes(shop, later)
    assert moved(moves) == [
        ["M1", "T1", "T2", "up"],  # A3 (5000) is in the window now; M2 stays in T1
        ["M3", "T0", "T2", "up"],
        ["M4", "-", "T0", "initial"],  # joined on 2024-08-01
        ["NEW", "-", "T0", "initial"],  # created on 2024-07-01
    ]
    assert tier_changes(shop)[-1] == ("NEW", later, None, "T0", "initial")
    assert len(tier_changes(shop)) == 7


def test_downgrade_when_spend_leaves_the_window(shop):
    apply_tier_changes(shop, AS_OF)
    insert(shop, "orders", [order("E1", "M3", "2025-06-01", 100.0)])  # the data goes on
    moves = apply_tier_changes(shop, datetime(2025, 7, 2))
    assert moves.set_index("customer_id")["direction"].to_dict() == {
        "M1": "down",
        "M2": "down",
        "M4": "initial",
        "NEW": "initial",
    }


def test_back_dated_application_is_refused(shop):
    apply_tier_changes(shop, AS_OF)
    with pytest.raises(ValidationError, match=r"3 change.* after 2024-06-01 00:00:00"):
        apply_tier_changes(shop, "2024-06-01")


def test_current_tier_missing_from_policy_is_a_config_error(shop):
    insert(
        shop,
        "tier_change",
        [
            {
                "customer_id": "M1",
                "changed_at": ts("2024-01-01"),
                "from_tier": None,
                "to_tier": "VIP",
                "direction": "initial",
                "reason": None,
            }
        ],
    )
    with pytest.raises(ConfigError, match="Tier 'VIP' is not in the policy"):
        apply_tier_changes(shop, AS_OF)


# --------------------------------------------------------------------------- tier protection


def test_review_days_must_be_positive():
    with pytest.raises(ConfigError, match="review_days must be a positive number of days"):
        TierPolicy.from_records(TIERS, review_days=0)


def test_protected_tier_waits_for_the_review_then_drops_one_tier(store):
    insert(store, "tier", TIERS)
    insert(store, "customer", [customer("G1"), customer("G2")])
    insert(
        store,
        "orders",
        [order("X1", "G1", "2024-03-01", 2500.0), order("Y1", "G2", "2024-03-01", 500.0)],
    )
    policy = TierPolicy.from_store(store, review_days=365)
    start = apply_tier_changes(store, AS_OF, policy=policy)
    assert moved(start) == [["G1", "-", "T2", "initial"], ["G2", "-", "T0", "initial"]]

    insert(store, "orders", [order("Y2", "G2", "2024-09-15", 700.0)])
    # G1's spend leaves the window on 2025-03-01; G2 reached silver on 2024-09-15.
    assert moved(apply_tier_changes(store, "2024-10-01", policy=policy)) == [
        ["G2", "T0", "T1", "up"]  # upgrades happen at once
    ]
    assert apply_tier_changes(store, "2025-04-01", policy=policy).empty  # gold is protected
    # Unprotected, the same evaluation would have dropped G1 straight to classic.
    assert evaluate_tiers(store, "2025-07-01").loc["G1", "tier_id"] == "T0"
    assert moved(apply_tier_changes(store, "2025-07-01", policy=policy)) == [
        ["G1", "T2", "T1", "down"]  # reviewed a year after 2024-07-01: one tier down
    ]
    assert apply_tier_changes(store, "2025-08-01", policy=policy).empty  # silver protected now
    insert(store, "orders", [order("X2", "G1", "2025-09-01", 100.0)])  # the data goes on
    assert moved(apply_tier_changes(store, "2025-10-01", policy=policy)) == [
        ["G2", "T1", "T0", "down"]  # a year after its upgrade; its spend left in September
    ]


# --------------------------------------------------------------------------- dates outside the data


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        (
            "2022-12-31",
            r"at 2022-12-31: it is before the store's data starts \(first customer or order "
            r"2023-01-01 00:00 UTC\), so no member holds a tier yet\. "
            r"Use a date from 2023-01-01 on",
        ),
        (
            "2062-01-01",
            r"at 2062-01-01: it is 13698 days after the last recorded order \(2024-07-01 00:00 "
            r"UTC\), so the 12 months of spend that tiers follow hold no orders .* Expected a date "
            r"by 2025-07-01 \(12 months after it\)",
        ),
        # A second past the last date: the last order (2024-07-01 00:00) has left the window.
        ("2025-07-01T00:00:01", r"Cannot record tier changes at 2025-07-01: it is 365 days after"),
    ],
)
def test_a_date_outside_the_data_is_refused_and_writes_nothing(shop, as_of, message):
    apply_tier_changes(shop, AS_OF)
    before = len(tier_changes(shop))
    with pytest.raises(ValidationError, match=message):
        apply_tier_changes(shop, as_of)
    assert len(tier_changes(shop)) == before == 3


def test_the_last_date_whose_window_holds_an_order_is_accepted(shop):
    moves = apply_tier_changes(shop, "2025-07-01")  # the last order is the window's first instant
    assert len(moves) == 5 and len(tier_changes(shop)) == 5


def test_a_store_without_orders_is_refused(store):
    insert(store, "tier", TIERS)
    insert(store, "customer", [customer("M1")])
    with pytest.raises(ValidationError, match=r"the store has no orders\. Load them with"):
        apply_tier_changes(store, AS_OF)
    assert len(tier_changes(store)) == 0
