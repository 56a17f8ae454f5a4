"""A churn list's value at risk is the retention report's revenue at risk (net of refunds)."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_rows import order, refund
from customer_helpers import D1, features
from sqlalchemy import insert

from crm_ml.analysis import customer_risk
from crm_ml.segments.lists import churn_details
from crm_ml.store import Store
from crm_ml.store.schema import Order, OrderItem, Score


def _score(customer_id: str, p: float) -> dict:
    return {
        "model_name": "crm-churn",
        "as_of": D1,
        "customer_id": customer_id,
        "model_version": "1",
        "probability": p,
        "band": "high",
        "scored_at": D1,
    }


@pytest.fixture
def churn_store(store: Store) -> Store:
    with store.begin() as conn:
        conn.execute(
            insert(Order),
            [
                order("o1", "c1", "2023-05-31 23:59:59", 900.0),  # before the 12 months
                order("o2", "c1", "2023-06-01 00:00", 1000.0),
                order("o3", "c2", "2024-05-01", 400.0),
                order("o4", "c2", "2024-06-01 00:00", 700.0),  # at the list date
            ],
        )
        conn.execute(
            insert(OrderItem),
            [
                refund("o2", 300.0, "2024-05-31", 300.0),  # refunded before the list date
                refund("o3", 400.0, "2024-06-01 00:00", 400.0),  # at the list date: not yet known
            ],
        )
        conn.execute(insert(Score), [_score("c1", 0.5), _score("c2", 0.25)])
    return store


def test_value_at_risk_is_p_churn_times_revenue_net_of_refunds(churn_store: Store) -> None:
    ids = pd.Index(["c1", "c2"], name="customer_id")
    # The list reads the store's 12 months, as the report does, not the features' revenue_365d.
    frame = features(revenue_365d=[1000.0, 400.0])
    with churn_store.connect() as conn:
        details = churn_details(conn, ids, D1, frame, channel="sms", purpose="marketing")

    assert details["revenue_12m"].tolist() == [700.0, 400.0]
    assert details["value_at_risk"].tolist() == [350.0, 100.0]


def test_the_list_and_the_report_agree_per_customer(churn_store: Store) -> None:
    ids = pd.Index(["c1", "c2"], name="customer_id")
    with churn_store.connect() as conn:
        details = churn_details(conn, ids, D1, None, channel="sms", purpose="marketing")
    report = customer_risk(churn_store, D1).set_index("customer_id").reindex(ids)

    assert details["revenue_12m"].tolist() == report["revenue_12m"].tolist()
    assert details["value_at_risk"].tolist() == report["revenue_at_risk"].round(2).tolist()
