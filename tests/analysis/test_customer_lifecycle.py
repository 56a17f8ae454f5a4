from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_rows import order

from crm_ml.analysis import churn_rate_trend, customer_lifecycle, lifecycle_events
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store.schema import Base

AS_OF = "2024-05-01"

# churn_days = 30. Events, worked out by hand:
#   a: new 01-10; churn 02-19 (no buy for 30 days after 01-20); reactivated 03-15; churn 04-14
#   b: new 02-05; churn 03-31; reactivated 04-20 (its churn on 05-20 is after as_of)
#   c: new 04-30
#   e: new 01-25, buys every < 30 days, never churns
PURCHASES = [
    ("a", "2024-01-10"),
    ("a", "2024-01-20"),
    ("a", "2024-03-15"),
    ("b", "2024-02-05"),
    ("b", "2024-03-01"),
    ("b", "2024-04-20"),
    ("c", "2024-04-30 23:00"),
    ("e", "2024-01-25"),
    ("e", "2024-02-15"),
    ("e", "2024-03-10"),
    ("e", "2024-04-05"),
    ("a", "2024-05-01 00:00"),  # at as_of: not read
]


@pytest.fixture
def lifecycle_store(store, insert):
    insert("orders", [order(f"o{i}", c, at, 10.0) for i, (c, at) in enumerate(PURCHASES)])
    return store


def test_monthly_lifecycle_counts(lifecycle_store):
    frame = customer_lifecycle(lifecycle_store, AS_OF, churn_days=30)

    assert frame.index.astype(str).tolist() == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert frame["active_start"].tolist() == [0, 2, 2, 2]
    assert frame["new"].tolist() == [2, 1, 0, 1]
    assert frame["reactivated"].tolist() == [0, 0, 1, 1]
    assert frame["churned"].tolist() == [0, 1, 1, 1]
    assert frame["active_end"].tolist() == [2, 2, 2, 3]
    assert frame["purchasers"].tolist() == [2, 2, 3, 3]
    np.testing.assert_array_equal(frame["churn_rate"], [np.nan, 0.5, 0.5, 0.5])
    assert frame["complete"].all()
    assert frame["period_start"].iloc[1] == pd.Timestamp("2024-02-01")
    assert frame["period_end"].iloc[1] == pd.Timestamp("2024-03-01")


def test_active_end_is_next_period_active_start(lifecycle_store):
    frame = customer_lifecycle(lifecycle_store, AS_OF, churn_days=30)

    assert frame["active_end"].iloc[:-1].tolist() == frame["active_start"].iloc[1:].tolist()


def test_quarterly_with_partial_period(lifecycle_store):
    frame = customer_lifecycle(
        lifecycle_store, AS_OF, freq="QE", churn_days=30, include_partial=True
    )

    assert frame.index.astype(str).tolist() == ["2024Q1", "2024Q2"]
    assert frame["complete"].tolist() == [True, False]
    assert frame["new"].tolist() == [3, 1]
    assert frame["reactivated"].tolist() == [1, 1]
    assert frame["churned"].tolist() == [2, 1]
    assert frame["active_end"].tolist() == [2, 3]
    assert frame["purchasers"].tolist() == [3, 3]


def test_churn_is_counted_only_once_known(lifecycle_store):
    # a's churn falls at 2024-04-14 00:00: at that as_of it is not yet known.
    at_boundary = customer_lifecycle(
        lifecycle_store, "2024-04-14", churn_days=30, include_partial=True
    )
    just_after = customer_lifecycle(
        lifecycle_store, "2024-04-14 00:00:00.000001", churn_days=30, include_partial=True
    )

    assert at_boundary.loc[pd.Period("2024-04", "M"), "churned"] == 0
    assert just_after.loc[pd.Period("2024-04", "M"), "churned"] == 1


def test_as_of_on_a_period_start_shows_no_empty_period(lifecycle_store):
    frame = customer_lifecycle(lifecycle_store, AS_OF, churn_days=30, include_partial=True)

    assert frame.index.astype(str).tolist()[-1] == "2024-04"


def test_start_keeps_earlier_history_in_the_active_base(lifecycle_store):
    frame = customer_lifecycle(lifecycle_store, AS_OF, churn_days=30, start="2024-03-05")

    assert frame.index.astype(str).tolist() == ["2024-03", "2024-04"]
    assert frame["active_start"].tolist() == [2, 2]


def test_lifecycle_events_from_a_frame():
    orders = pd.DataFrame(
        {
            "customer_id": ["x", "x", "x"],
            "ordered_at": pd.to_datetime(["2024-01-01", "2024-01-20", "2024-02-19"]),
        }
    )
    events = lifecycle_events(orders, pd.Timestamp("2024-12-31"), churn_days=30)

    # A gap of exactly churn_days lapses and reactivates at the same instant.
    assert events["event"].tolist() == ["new", "churned", "reactivated", "churned"]
    assert events["at"].dt.strftime("%m-%d").tolist() == ["01-01", "02-19", "02-19", "03-20"]


def test_churn_rate_trend_pools_a_window(lifecycle_store):
    trend = churn_rate_trend(customer_lifecycle(lifecycle_store, AS_OF, churn_days=30), window=2)

    np.testing.assert_array_equal(trend["churn_rate_rolling"], [np.nan, 0.5, 0.5, 0.5])
    assert trend.columns.tolist() == ["active_start", "churned", "churn_rate", "churn_rate_rolling"]


def test_no_churn_rate_before_anyone_could_churn(lifecycle_store):
    # With 60 days the first churn is possible on 03-10 (60 days after the first
    # purchase): January and February cannot hold one, so their rate is unknown, not 0.
    frame = customer_lifecycle(lifecycle_store, AS_OF, churn_days=60)
    trend = churn_rate_trend(frame, window=2)

    assert frame["active_start"].tolist() == [0, 2, 3, 3]
    assert frame["churned"].tolist() == [0, 0, 0, 0]
    np.testing.assert_array_equal(frame["churn_rate"], [np.nan, np.nan, 0.0, 0.0])
    np.testing.assert_array_equal(trend["churn_rate"], [np.nan, np.nan, 0.0, 0.0])
    # February is not pooled: March's window would hold it, so only April has a rate.
    np.testing.assert_array_equal(trend["churn_rate_rolling"], [np.nan, np.nan, np.nan, 0.0])


def test_parameters_are_checked(lifecycle_store, store):
    with pytest.raises(ConfigError, match="freq='monthly' is not a calendar period"):
        customer_lifecycle(lifecycle_store, AS_OF, freq="monthly")
    with pytest.raises(ConfigError, match="churn_days must be positive"):
        customer_lifecycle(lifecycle_store, AS_OF, churn_days=0)
    with pytest.raises(ValidationError, match="missing column"):
        churn_rate_trend(pd.DataFrame({"churned": [1]}))


def test_empty_store_needs_a_start(store):
    with pytest.raises(ConfigError, match="No orders before"):
        customer_lifecycle(store, AS_OF)
    frame = customer_lifecycle(store, AS_OF, start="2024-01-01")
    assert frame["active_end"].tolist() == [0, 0, 0, 0]


def test_periods_follow_the_business_time_zone(lifecycle_store):
    # c's order at 23:00 UTC on 30 April is 1 May in Shanghai, after the last complete month.
    frame = customer_lifecycle(lifecycle_store, AS_OF, churn_days=30, tz="Asia/Shanghai")

    assert frame.index.astype(str).tolist()[-1] == "2024-04"
    assert frame.loc[pd.Period("2024-04", "M"), "new"] == 0
    assert frame["period_start"].iloc[0] == pd.Timestamp("2024-01-01")  # local midnight


def test_matches_a_brute_force_reference_on_random_orders(duckdb_store):
    # Reference: active at t = bought in [t - N, t); the event counts must balance to it.
    rng = np.random.default_rng(11)
    start = pd.Timestamp("2023-01-01")
    times = start + pd.to_timedelta(rng.integers(0, 500 * 24 * 3600, 300), unit="s")
    customers = [f"c{i:02d}" for i in rng.integers(0, 40, 300)]
    rows = [
        order(f"o{i}", c, str(t), 1.0)
        for i, (c, t) in enumerate(zip(customers, times, strict=True))
    ]
    with duckdb_store.begin() as conn:
        conn.execute(Base.metadata.tables["orders"].insert(), rows)
    as_of, lapse = pd.Timestamp("2024-05-01"), pd.Timedelta(days=45)
    frame = customer_lifecycle(duckdb_store, as_of, churn_days=45)

    buys = pd.DataFrame({"customer_id": customers, "at": times})
    buys = buys[buys["at"] < as_of]
    first = buys.groupby("customer_id")["at"].min()

    def active(t):
        return buys.loc[(buys["at"] >= t - lapse) & (buys["at"] < t), "customer_id"].nunique()

    for row in frame.itertuples():
        s, e = row.period_start, row.period_end
        assert row.active_start == active(s), s
        assert row.active_end == active(e), e
        assert row.new == ((first >= s) & (first < e)).sum()
        in_period = buys[(buys["at"] >= s) & (buys["at"] < e)]
        assert row.purchasers == in_period["customer_id"].nunique()
