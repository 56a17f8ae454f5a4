"""Helpers for tag and segment tests: customers and hand-written feature frames."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import insert

from crm_ml.segments import Segment, save_segment, snapshot_segment
from crm_ml.store import Store
from crm_ml.store.schema import Consent, Customer, CustomerOwner

T0 = datetime(2024, 1, 1)
D1 = datetime(2024, 6, 1)
D2 = datetime(2024, 7, 1)
D3 = datetime(2024, 8, 1)
#: When list tests record consent and owners: before every snapshot they take.
BEFORE = datetime(2024, 3, 1)


def add_customers(store: Store, ids: list[str], names: dict[str, str] | None = None) -> None:
    names = names or {}
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "customer_id": c,
                    "name": names.get(c),
                    "created_at": T0,
                    "status": "active",
                    "is_member": True,
                }
                for c in ids
            ],
        )


def features(**columns: list[object]) -> pd.DataFrame:
    """A features frame for customers c1..cN from the given columns."""
    length = len(next(iter(columns.values())))
    index = pd.Index([f"c{i}" for i in range(1, length + 1)], name="customer_id", dtype="str")
    return pd.DataFrame(columns, index=index)


def sms_consent(customer: str, status: str, at: datetime = BEFORE) -> dict:
    """A consent row for SMS marketing."""
    return {"customer_id": customer, "channel": "sms", "purpose": "marketing",
            "updated_at": at, "status": status, "source": "test"}  # fmt: skip


def owned_segment(store: Store, ids: list[str]) -> None:
    """Customers ``ids``: c1 owned by m1, c2 by m2, the rest unowned; c1–c3 granted SMS
    marketing; segment ``everyone`` saved and snapshot at D1."""
    add_customers(store, ids)
    with store.begin() as conn:
        conn.execute(insert(Consent), [sms_consent(c, "granted") for c in ("c1", "c2", "c3")])
        conn.execute(
            insert(CustomerOwner),
            [{"customer_id": "c1", "valid_from": BEFORE, "owner_id": "m1", "owner_name": "周经理"},
             {"customer_id": "c2", "valid_from": BEFORE, "owner_id": "m2", "owner_name": "吴经理"}],
        )  # fmt: skip
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")
    snapshot_segment(store, "everyone", features(revenue_365d=[1.0] * len(ids)), D1)
