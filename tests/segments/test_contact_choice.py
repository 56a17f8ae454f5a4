"""A list reaches a customer at their current number: the latest verified phone and email.

``customer_identity`` is append-only, so a new number is a new row: the most
recent verified row of each kind is the one in use. An unverified row is used
only when the customer has no verified one of that kind.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
from customer_helpers import D1, add_customers, features
from sqlalchemy import insert

from crm_ml.segments import Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.headers import read_list
from crm_ml.segments.lists import contact_details
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerIdentity

OLD, NEW, NEWER = datetime(2023, 1, 1), datetime(2024, 5, 1), datetime(2024, 5, 20)


def _identity(customer: str, kind: str, value: str, verified: bool, at: datetime) -> dict:
    return {"customer_id": customer, "kind": kind, "value": value, "verified": verified,
            "created_at": at}  # fmt: skip


ROWS = [
    # c1 changed numbers: the new verified one wins; a newer unverified one does not.
    _identity("c1", "phone", "+8613500000001", True, OLD),
    _identity("c1", "phone", "+8613900000002", True, NEW),
    _identity("c1", "phone", "+8613700000003", False, NEWER),
    _identity("c1", "email", "old@example.com", True, OLD),
    _identity("c1", "email", "new@example.com", True, NEW),
    # c2 has no verified phone: the latest unverified one is the best there is.
    _identity("c2", "phone", "+8613500000004", False, OLD),
    _identity("c2", "phone", "+8613600000005", False, NEW),
    # c3: two verified phones recorded at the same time: the smaller value, every time.
    _identity("c3", "phone", "+8613800000007", True, NEW),
    _identity("c3", "phone", "+8613800000006", True, NEW),
]


def test_the_latest_verified_identity_of_each_kind_is_chosen(store: Store) -> None:
    add_customers(store, ["c1", "c2", "c3", "c4"], {"c1": "张三"})
    with store.begin() as conn:
        conn.execute(insert(CustomerIdentity), ROWS)
    ids = pd.Index(["c4", "c3", "c2", "c1"], name="customer_id")

    with store.connect() as conn:
        details = contact_details(conn, ids)

    assert details.index.tolist() == ["c4", "c3", "c2", "c1"]
    assert details["phone"].tolist() == [
        pd.NA,
        "+8613800000006",
        "+8613600000005",
        "+8613900000002",
    ]
    assert details["email"].tolist() == [pd.NA, pd.NA, pd.NA, "new@example.com"]


def test_an_unmasked_list_carries_the_new_number(store: Store, tmp_path: Path) -> None:
    add_customers(store, ["c1"], {"c1": "张三"})
    with store.begin() as conn:
        conn.execute(insert(CustomerIdentity), [r for r in ROWS if r["customer_id"] == "c1"])
        conn.execute(
            insert(Consent),
            [{"customer_id": "c1", "channel": "sms", "purpose": "marketing", "updated_at": OLD,
              "status": "granted", "source": "test"}],
        )  # fmt: skip
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")
    snapshot_segment(store, "everyone", features(revenue_365d=[1.0]), D1)

    summary = export_list(
        store, "everyone", D1, channel="sms", purpose="marketing", out_dir=tmp_path,
        secret="contact-choice-secret-0123456789", actor="t", unmask=True,
        unmask_reason="test: full data checked",
    )  # fmt: skip

    rows = pd.concat([read_list(p) for p in summary.files["path"]], ignore_index=True)
    assert rows["customer_id"].tolist() == ["c1"]  # an SMS list: the phone, no email
    assert rows["phone"].str.endswith("13900000002").tolist() == [True]
