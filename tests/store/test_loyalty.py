from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy import select

from crm_ml.errors import LedgerError, ValidationError
from crm_ml.store.loyalty import (
    POINTS,
    PostingResult,
    overdrafts,
    points_balance,
    post_points,
    post_stored_value,
    stored_value_balance,
)
from crm_ml.store.schema import Base


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def insert(store, table: str, rows: list[dict]) -> None:
    with store.begin() as conn:
        conn.execute(Base.metadata.tables[table].insert(), rows)


def ledger(store, table: str = "points_ledger") -> list[tuple]:
    t = Base.metadata.tables[table]
    with store.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(t)))


def points(entry, customer, when, kind, amount, **extra) -> dict:
    return {
        "entry_id": entry,
        "customer_id": customer,
        "posted_at": when,
        "kind": kind,
        "points": amount,
    } | extra


def value(entry, customer, when, kind, amount) -> dict:
    return {
        "entry_id": entry,
        "customer_id": customer,
        "posted_at": when,
        "kind": kind,
        "amount": amount,
    }


@pytest.fixture
def customers(store):
    rows = [
        {
            "customer_id": c,
            "is_member": True,
            "status": "active",
            "merged_into": None,
            "created_at": ts("2023-01-01"),
        }
        for c in ("C1", "C2")
    ]
    rows.append(
        {
            "customer_id": "OLD",
            "is_member": True,
            "status": "merged",
            "merged_into": "C1",
            "created_at": ts("2023-01-01"),
        }
    )
    insert(store, "customer", rows)
    return store


# --------------------------------------------------------------------------- balances


def test_points_balance_is_the_sum_of_postings_before_as_of(customers):
    post_points(
        customers,
        [
            points("E1", "C1", "2024-01-01", "earn", 100),
            points("E2", "C1", "2024-01-02", "redeem", -30),
            points("E3", "C1", "2024-01-03", "adjust", 5),
            points("E4", "C2", "2024-01-02", "earn", 7),
        ],
    )
    balance = points_balance(customers)
    assert balance.to_dict() == {"C1": 75, "C2": 7}
    assert (balance.name, balance.index.name, str(balance.dtype)) == (
        "points_balance",
        "customer_id",
        "int64",
    )
    assert points_balance(customers, as_of="2024-01-02").to_dict() == {"C1": 100}
    assert points_balance(customers, as_of=datetime(2023, 1, 1)).empty


def test_a_number_is_not_taken_for_a_date(customers):
    # pandas reads 20240102 as nanoseconds after 1970: every balance would be empty.
    with pytest.raises(ValidationError, match=r"as_of=20240102 is a number.*'2024-01-02'"):
        points_balance(customers, as_of=20240102)


def test_stored_value_balance(customers):
    post_stored_value(
        customers,
        [
            value("S1", "C1", "2024-01-01", "top_up", 500.0),
            value("S2", "C1", "2024-01-05", "spend", -120.5),
            value("S3", "C1", "2024-01-06", "refund", 20.25),
        ],
    )
    balance = stored_value_balance(customers)
    assert balance.to_dict() == {"C1": 399.75}
    assert (balance.name, str(balance.dtype)) == ("stored_value_balance", "float64")
    assert stored_value_balance(customers, as_of="2024-01-06").to_dict() == {"C1": 379.5}


# --------------------------------------------------------------------------- idempotency


def test_posting_twice_credits_once(customers):
    entries = pd.DataFrame(
        [
            points("E1", "C1", "2024-01-01", "earn", 100, order_id="O1", note="下单积分"),
            points("E2", "C1", "2024-01-02", "redeem", -40),
        ]
    )
    assert post_points(customers, entries) == PostingResult(posted=2, already_posted=0)
    assert post_points(customers, entries) == PostingResult(posted=0, already_posted=2)
    assert points_balance(customers).to_dict() == {"C1": 60}
    assert len(ledger(customers)) == 2


def test_same_key_with_different_content_is_refused(customers):
    post_points(customers, [points("E1", "C1", "2024-01-01", "earn", 100)])
    with pytest.raises(LedgerError, match=r"E1 was already posted .*points=100 then 120"):
        post_points(customers, [points("E1", "C1", "2024-01-01", "earn", 120)])


def test_duplicate_key_within_a_batch(customers):
    same = points("E1", "C1", "2024-01-01", "earn", 100)
    assert post_points(customers, [same, same]).posted == 1
    with pytest.raises(LedgerError, match=r"E2 appears twice .*customer_id='C1' then 'C2'"):
        post_points(
            customers,
            [
                points("E2", "C1", "2024-01-01", "earn", 5),
                points("E2", "C2", "2024-01-01", "earn", 5),
            ],
        )


def test_time_zone_aware_posting_times_are_stored_as_utc(customers):
    post_points(customers, [points("E1", "C1", "2024-01-01T08:00:00+08:00", "earn", 1)])
    assert ledger(customers)[0][2] == ts("2024-01-01 00:00:00")


def test_nothing_is_written_when_one_entry_fails(customers):
    with pytest.raises(LedgerError):
        post_points(
            customers,
            [
                points("E1", "C1", "2024-01-01", "earn", 100),
                points("E2", "C1", "2024-01-02", "redeem", -500),
            ],
        )
    assert ledger(customers) == []


def test_empty_posting_does_nothing(customers):
    assert post_points(customers, []) == PostingResult(0, 0)


# --------------------------------------------------------------------------- balance rule


def test_redemption_above_the_balance_is_refused(customers):
    post_points(customers, [points("E1", "C1", "2024-01-01", "earn", 100)])
    with pytest.raises(
        LedgerError,
        match=r"redeem R1 for customer C1: the balance at 2024-01-02 00:00:00 is 100 points, "
        r"but it takes 150 points",
    ):
        post_points(customers, [points("R1", "C1", "2024-01-02", "redeem", -150)])


def test_redemption_counts_only_earlier_postings(customers):
    post_points(customers, [points("E1", "C1", "2024-01-05", "earn", 100)])
    with pytest.raises(LedgerError, match="balance at 2024-01-02 00:00:00 is 0 points"):
        post_points(customers, [points("R1", "C1", "2024-01-02", "redeem", -10)])


def test_earning_at_the_same_instant_covers_a_redemption(customers):
    result = post_points(
        customers,
        [
            points("R1", "C1", "2024-01-01 10:00", "redeem", -50),
            points("E1", "C1", "2024-01-01 10:00", "earn", 50),
        ],
    )
    assert result.posted == 2
    assert points_balance(customers).to_dict() == {"C1": 0}


def test_back_dated_debit_that_uncovers_a_later_redemption_is_refused(customers):
    post_points(
        customers,
        [
            points("E1", "C1", "2024-01-01", "earn", 100),
            points("R1", "C1", "2024-01-03", "redeem", -80),
        ],
    )
    with pytest.raises(
        LedgerError,
        match=r"C1's existing redeem R1 at 2024-01-03 00:00:00 uncovered: the balance then "
        r"would be 50 points, but it takes 80 points",
    ):
        post_points(customers, [points("X1", "C1", "2024-01-02", "expire", -50)])


def test_an_old_overdraft_does_not_block_new_postings(customers):
    insert(
        customers,
        "points_ledger",
        [
            points("L1", "C1", ts("2020-01-01"), "earn", 10),
            points("L2", "C1", ts("2020-01-02"), "redeem", -50),
        ],
    )
    assert post_points(customers, [points("E1", "C1", "2024-01-01", "earn", 5)]).posted == 1


def test_stored_value_spend_above_the_balance_is_refused(customers):
    post_stored_value(customers, [value("S1", "C2", "2024-01-01", "top_up", 50.0)])
    with pytest.raises(
        LedgerError, match=r"customer C2: the balance .* is 50.00, but it takes 50.01"
    ):
        post_stored_value(customers, [value("S2", "C2", "2024-01-02", "spend", -50.01)])


def test_overdrafts_reports_each_uncovered_redemption():
    timeline = pd.DataFrame(
        [
            ("C1", "E1", ts("2024-01-01"), "earn", 10),
            ("C1", "R1", ts("2024-01-02"), "redeem", -5),
            ("C1", "R2", ts("2024-01-03"), "redeem", -6),
            ("C2", "R3", ts("2024-01-01"), "redeem", -1),
        ],
        columns=["customer_id", "entry_id", "posted_at", "kind", "points"],
    )
    found = overdrafts(timeline, POINTS)
    assert found[["entry_id", "balance"]].values.tolist() == [["R2", 5.0], ["R3", 0.0]]


# --------------------------------------------------------------------------- bad postings


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (points("E1", "C1", "2024-01-01", "earn", -5), "E1: earn postings must be positive"),
        (points("E1", "C1", "2024-01-01", "redeem", 5), "E1: redeem postings must be negative"),
        (points("E1", "C1", "2024-01-01", "bonus", 5), "kind 'bonus' is not a points kind"),
        (points("E1", "C1", "2024-01-01", "earn", 0), r"points=0; expected a non-zero number"),
        (points("E1", "C1", "2024-01-01", "earn", 1.5), "must be whole numbers, got 1.5"),
        (points("E1", "C9", "2024-01-01", "earn", 1), "customer C9, who is not in the store"),
        (points("E1", "OLD", "2024-01-01", "earn", 1), "merged into C1; post to C1 instead"),
    ],
)
def test_bad_postings_are_ledger_errors(customers, entry, message):
    with pytest.raises(LedgerError, match=message):
        post_points(customers, [entry])


def test_missing_and_unknown_columns_are_named(customers):
    with pytest.raises(ValidationError, match="missing: points; unknown: pts"):
        post_points(
            customers,
            [
                {
                    "entry_id": "E1",
                    "customer_id": "C1",
                    "posted_at": "2024",
                    "kind": "earn",
                    "pts": 1,
                }
            ],
        )


def test_blank_id_and_bad_time_are_validation_errors(customers):
    with pytest.raises(ValidationError, match="blank customer_id"):
        post_points(customers, [points("E1", None, "2024-01-01", "earn", 1)])
    with pytest.raises(ValidationError, match=r"E1.posted_at='soon' is not a timestamp"):
        post_points(customers, [points("E1", "C1", "soon", "earn", 1)])
