"""``points_expiring_30d`` and ``tier_level`` at their boundaries, on every engine.

Points follow the ledger's rule (:mod:`crm_ml.analysis.points`): spending
consumes the oldest lots first; a lot is valid until ``expires_at``, so one
expiring exactly at ``as_of`` has expired; expiring within 30 days means
``as_of < expires_at <= as_of + 30 days``.
"""

from datetime import timedelta

import pandas as pd
import pytest

from crm_ml.analysis import customers_with_expiring_points
from crm_ml.features import customer_features

from .reference import reference_features
from .rows import insert_rows
from .sample import AS_OF, d

HORIZON = AS_OF + timedelta(days=30)
TICK = timedelta(microseconds=1)

#: (entry_id, customer_id, posted_at, kind, points, expires_at)
LEDGER = [
    # a: expires exactly at as_of, so already expired.
    ("a1", "a", d("2023-07-01"), "earn", 100, AS_OF),
    # b: a microsecond after as_of and exactly at the horizon count; just after it does not.
    ("b1", "b", d("2024-01-01"), "earn", 40, AS_OF + TICK),
    ("b2", "b", d("2024-01-02"), "earn", 10, HORIZON),
    ("b3", "b", d("2024-01-03"), "earn", 20, HORIZON + TICK),
    # c: the redemption took all of c1 and 20 of c2; c3 expires later.
    ("c1", "c", d("2024-01-01"), "earn", 100, d("2024-07-15")),
    ("c2", "c", d("2024-02-01"), "earn", 50, d("2024-07-20")),
    ("c3", "c", d("2024-05-01"), "earn", 200, d("2025-05-01")),
    ("c4", "c", d("2024-03-01"), "redeem", -120, None),
    # d: earned together, the first-to-expire lot is spent first (whatever the entry ids).
    ("d1", "d", d("2024-06-01"), "earn", 60, d("2024-12-31")),
    ("d2", "d", d("2024-06-01"), "earn", 40, d("2024-07-10")),
    ("d3", "d", d("2024-06-02"), "redeem", -50, None),
    # e: an overdraft (beyond the never-expiring adjustment) is repaid by the next lot.
    ("e1", "e", d("2023-12-01"), "adjust", 5, None),
    ("e2", "e", d("2024-01-01"), "adjust", -30, None),
    ("e3", "e", d("2024-02-01"), "earn", 50, d("2024-07-20")),
    ("e4", "e", d("2024-03-01"), "expire", -10, None),
]

EXPECTED_EXPIRING = {"a": 0, "b": 50, "c": 30, "d": 0, "e": 15, "f": 0, "g": 0}


def _tables():
    customers = sorted({row[1] for row in LEDGER} | {"f", "g"})
    return {
        "customer": [dict(customer_id=c) for c in customers],
        # Features refuse an as_of far from the store's orders.
        "orders": [
            dict(order_id="o1", customer_id="a", ordered_at=d("2024-06-30"), gross_amount=1.0)
        ],
        "points_ledger": [
            dict(entry_id=e, customer_id=c, posted_at=at, kind=k, points=p, expires_at=x)
            for e, c, at, k, p, x in LEDGER
        ],
        "tier": [
            dict(tier_id="classic", name="classic", level=0, min_spend_12m=0.0),
            dict(tier_id="silver", name="silver", level=1, min_spend_12m=1000.0),
        ],
        "tier_change": [
            dict(
                customer_id="g", changed_at=d("2024-01-01"), to_tier="classic", direction="initial"
            ),
            dict(
                customer_id="b", changed_at=d("2024-02-01"), to_tier="silver", direction="initial"
            ),
            dict(customer_id="c", changed_at=AS_OF, to_tier="silver", direction="initial"),
        ],
    }


@pytest.fixture
def loyalty(store):
    insert_rows(store, _tables())
    return customer_features(store, AS_OF, groups=["loyalty"])


def test_points_expiring_counts_unspent_points_in_the_half_open_horizon(loyalty):
    assert loyalty["points_expiring_30d"].to_dict() == EXPECTED_EXPIRING


def test_points_expiring_matches_the_points_analysis(store, loyalty):
    listed = customers_with_expiring_points(store, AS_OF, within_days=30)["points_expiring"]
    assert listed.to_dict() == {k: v for k, v in EXPECTED_EXPIRING.items() if v}
    pd.testing.assert_series_equal(
        listed.reindex(loyalty.index, fill_value=0),
        loyalty["points_expiring_30d"],
        check_names=False,
    )


def test_tier_level_is_missing_without_a_tier_and_zero_for_the_lowest_tier(loyalty):
    levels = loyalty["tier_level"]
    assert levels.dtype == "float64"
    assert levels.loc["g"] == 0.0
    assert levels.loc["b"] == 1.0
    # c's first tier change is at as_of: not a tier yet.
    assert levels.drop(["b", "g"]).isna().all()


def test_reference_agrees_on_the_boundaries(loyalty):
    expected = reference_features(_tables(), AS_OF, groups=("loyalty",))
    pd.testing.assert_frame_equal(loyalty, expected)
