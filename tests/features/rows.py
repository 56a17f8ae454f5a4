"""Hand-written rows for feature tests, written with SQLAlchemy Core.

Rows name only what a test cares about; :func:`complete` adds the other
required columns with neutral defaults, and the reference implementation reads
the very same completed rows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete

from crm_ml.store import Store
from crm_ml.store.schema import Base

Rows = dict[str, list[dict[str, Any]]]

T0 = datetime(2020, 1, 1)

DEFAULTS: dict[str, dict[str, Any]] = {
    "customer": {
        "name": None,
        "gender": None,
        "birth_date": None,
        "city": None,
        "city_tier": None,
        "acquisition_channel": None,
        "is_member": False,
        "member_since": None,
        "status": "active",
        "merged_into": None,
        "created_at": T0,
    },
    "customer_merge": {"merged_at": T0, "reason": "duplicate phone", "actor": None},
    "customer_change": {"old_value": None, "new_value": None, "actor": None},
    "customer_owner": {"owner_id": "owner1", "owner_name": None, "valid_to": None},
    "consent": {"purpose": "marketing", "source": None},
    "product": {"name": None, "brand": None, "list_price": None},
    "orders": {
        "channel": "online",
        "store_id": None,
        "gross_amount": None,
        "discount_amount": 0.0,
        "net_amount": None,
    },
    "order_item": {
        "quantity": 1,
        "discount_amount": 0.0,
        "refund_amount": 0.0,
        "refunded_at": None,
    },
    "behavior_event": {"channel": None, "touchpoint": None, "product_id": None, "detail": None},
    "points_ledger": {"order_id": None, "expires_at": None, "note": None},
    "tier": {"label": None},
    "tier_change": {"from_tier": None, "reason": None},
    "coupon": {
        "campaign_id": None,
        "expires_at": None,
        "face_value": 10.0,
        "redeemed_at": None,
        "order_id": None,
    },
    "stored_value_ledger": {"order_id": None},
    "campaign_contact": {
        "contact_group": "treatment",
        "responded": False,
        "responded_at": None,
        "order_id": None,
    },
}


def complete(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with the table's defaults for every column it does not name."""
    full = {**DEFAULTS.get(table, {}), **row}
    if table == "orders":
        if full["net_amount"] is None:
            full["net_amount"] = full["gross_amount"] - full["discount_amount"]
        if full["gross_amount"] is None:
            full["gross_amount"] = full["net_amount"] + full["discount_amount"]
    return full


def completed(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> Rows:
    """Every row of every table completed (deep copies; the input is not changed)."""
    return {
        name: [complete(name, r) for r in copy.deepcopy(list(rows))]
        for name, rows in tables.items()
    }


def insert_rows(store: Store, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Insert rows (completed with defaults) into the store, in one transaction."""
    with store.begin() as conn:
        for name, rows in completed(tables).items():
            if rows:
                conn.execute(Base.metadata.tables[name].insert(), rows)


def delete_rows(store: Store, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Delete rows by primary key, in one transaction."""
    with store.begin() as conn:
        for name, rows in tables.items():
            table = Base.metadata.tables[name]
            for row in rows:
                keys = [c.name for c in table.primary_key.columns]
                conn.execute(delete(table).where(*[table.c[k] == row[k] for k in keys]))
