from __future__ import annotations

import pandas as pd
import pytest
from analysis_rows import ts

from crm_ml.analysis import (
    customers_with_expiring_points,
    next_points_expiry,
    points_expiring,
    points_liability,
    remaining_lots,
)
from crm_ml.errors import ConfigError

AS_OF = "2024-07-01"


def post(entry_id, customer_id, at, kind, points, expires=None):
    return {
        "entry_id": entry_id,
        "customer_id": customer_id,
        "posted_at": ts(at),
        "kind": kind,
        "points": points,
        "expires_at": ts(expires) if expires else None,
    }


LEDGER = [
    # p1: 30 redeemed FIFO from e1, leaving 70 of e1 expired but not yet posted as expired.
    post("e1", "p1", "2024-01-01", "earn", 100, "2024-06-30"),
    post("e2", "p1", "2024-02-01", "earn", 50, "2024-07-15"),
    post("r1", "p1", "2024-03-01", "redeem", -30),
    post("e3", "p1", "2024-04-01", "earn", 40, "2024-09-10"),
    post("e4", "p1", "2024-05-01", "adjust", 5),  # no expiry
    post("r2", "p1", "2024-07-01", "redeem", -20),  # at as_of: not read
    post("e5", "p1", "2024-07-01", "earn", 999, "2025-07-01"),  # at as_of: not read
    # p2: expired and posted as such.
    post("f1", "p2", "2024-01-01", "earn", 10, "2024-06-01"),
    post("f2", "p2", "2024-06-01", "expire", -10),
    # p3: an overdraft repaid by the next lot.
    post("g1", "p3", "2024-01-01", "adjust", -20),
    post("g2", "p3", "2024-02-01", "earn", 50, "2024-08-01"),
    # p4: a lot expiring exactly at as_of is expired, not expiring.
    post("h1", "p4", "2024-01-01", "earn", 20, "2024-07-01"),
]


@pytest.fixture
def points_store(store, insert):
    insert("points_ledger", LEDGER)
    return store


def test_liability_excludes_expired_unposted_points(points_store):
    frame = points_liability(points_store, AS_OF, point_value=0.01)

    assert frame.index.tolist() == ["p1", "p2", "p3", "p4"]
    assert frame["points_balance"].tolist() == [165, 0, 30, 20]
    assert frame["points_expired_unposted"].tolist() == [70, 0, 0, 20]
    assert frame["points_outstanding"].tolist() == [95, 0, 30, 0]
    assert frame["liability"].tolist() == pytest.approx([0.95, 0.0, 0.30, 0.0])


def test_expiring_points_by_month(points_store):
    frame = points_expiring(points_store, AS_OF, within_days=90, point_value=0.5)

    assert frame.index.astype(str).tolist() == ["2024-07", "2024-08", "2024-09"]
    assert frame["customers"].tolist() == [1, 1, 1]
    assert frame["points"].tolist() == [50, 30, 40]
    assert frame["value"].tolist() == [25.0, 15.0, 20.0]


def test_expiring_points_per_customer(points_store):
    frame = customers_with_expiring_points(points_store, AS_OF, within_days=30)

    assert frame.index.tolist() == ["p1"]
    assert frame["points_expiring"].tolist() == [50]
    assert frame["next_expiry_at"].tolist() == [pd.Timestamp("2024-07-15")]


def test_the_next_expiry_however_far_off(points_store):
    # At 2 August, p1's lot of 15 July has expired (not yet posted) and p3's of 1 August
    # too: the next to expire is p1's 40 points of 10 September, 39 days on.
    frame = next_points_expiry(points_store, "2024-08-02", tz="Asia/Shanghai")

    assert frame.index.tolist() == [pd.Timestamp("2024-09-10").date()]
    assert frame.index.name == "expiry_date"
    assert frame.to_dict("records") == [{"customers": 1, "points": 40}]
    assert points_expiring(points_store, "2024-08-02", within_days=30)["points"].sum() == 0


def test_no_next_expiry_without_expiring_points(store):
    frame = next_points_expiry(store, AS_OF)

    assert frame.empty and list(frame.columns) == ["customers", "points"]


def test_fifo_consumes_oldest_lots_first():
    ledger = pd.DataFrame(
        [
            ("a1", "c", "2024-01-01", 10),
            ("a2", "c", "2024-01-02", 10),
            ("a3", "c", "2024-01-03", -15),
            ("a4", "c", "2024-01-04", 10),
            ("a5", "c", "2024-01-05", -2),
            ("b1", "d", "2024-01-01", -5),
        ],
        columns=["entry_id", "customer_id", "posted_at", "points"],
    ).assign(posted_at=lambda f: pd.to_datetime(f["posted_at"]), expires_at=pd.NaT)

    lots, overdraft = remaining_lots(ledger)

    assert lots["entry_id"].tolist() == ["a2", "a4"]
    assert lots["remaining"].tolist() == [3, 10]
    assert overdraft.to_dict() == {"d": 5}


def test_horizon_must_be_positive(points_store):
    with pytest.raises(ConfigError, match="within_days must be positive"):
        points_expiring(points_store, AS_OF, within_days=0)
    with pytest.raises(ConfigError, match="point_value must be positive"):
        points_liability(points_store, AS_OF, point_value=-1)


def test_lots_posted_together_are_spent_first_to_expire_first():
    # The feature points_expiring_30d orders lots the same way (not by entry_id text).
    at = pd.Timestamp("2024-06-01")
    ledger = pd.DataFrame(
        {
            "entry_id": ["a1", "a2", "a3", "a4"],
            "customer_id": "c",
            "posted_at": [at, at, at, at + pd.Timedelta(days=1)],
            "points": [60, 5, 40, -50],
            "expires_at": [pd.Timestamp("2024-12-31"), pd.NaT, pd.Timestamp("2024-07-10"), pd.NaT],
        }
    )

    lots, _ = remaining_lots(ledger)

    assert lots["entry_id"].tolist() == ["a1", "a2"]
    assert lots["remaining"].tolist() == [50, 5]
