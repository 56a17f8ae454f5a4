"""Helpers for tag and segment tests: customers and hand-written feature frames."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import insert

from crm_ml.store import Store
from crm_ml.store.schema import Customer

T0 = datetime(2024, 1, 1)
D1 = datetime(2024, 6, 1)
D2 = datetime(2024, 7, 1)
D3 = datetime(2024, 8, 1)


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
