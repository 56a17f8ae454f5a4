"""A list is sent now, so it goes to each customer's account manager now.

A list re-run for an earlier date already honours consent withdrawn since; it
also routes each customer to the assignment in force at the later of as_of and
the current time, not to a manager who has left since.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
from customer_helpers import BEFORE, D1, add_customers, features, sms_consent
from sqlalchemy import insert

from crm_ml.segments import Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.export import ExportSummary
from crm_ml.segments.headers import read_list
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerOwner

LEFT, FUTURE = datetime(2024, 7, 1), datetime(2099, 1, 1)
IDS = ["c1", "c2", "c3", "c4", "c5"]


def _owner(customer: str, owner: str, start: datetime, end: datetime | None = None) -> dict:
    return {"customer_id": customer, "valid_from": start, "owner_id": owner,
            "owner_name": f"{owner}经理", "valid_to": end}  # fmt: skip


def _setup(store: Store) -> None:
    add_customers(store, IDS)
    with store.begin() as conn:
        conn.execute(
            insert(CustomerOwner),
            [
                _owner("c1", "m1", BEFORE, LEFT),  # m1 left after the list date ...
                _owner("c1", "m2", LEFT),  # ... and handed c1 to m2
                _owner("c2", "m1", BEFORE),  # never changed
                _owner("c3", "m1", BEFORE, LEFT),  # nobody took c3 over
                _owner("c4", "m3", FUTURE),  # not in force yet
                _owner("c5", "m1", BEFORE, LEFT),
                _owner("c5", "m2", LEFT),
            ],
        )
        conn.execute(
            insert(Consent),
            [sms_consent(c, "granted") for c in IDS] + [sms_consent("c5", "withdrawn", LEFT)],
        )
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")


def _export(store: Store, on: datetime, folder: Path) -> ExportSummary:
    snapshot_segment(store, "everyone", features(revenue_365d=[1.0] * 5), on)
    return export_list(
        store, "everyone", on, channel="sms", purpose="marketing", out_dir=folder,
        secret="current-owner-secret-0123456789", actor="t", unmask=True,
        unmask_reason="test: full data checked",
    )  # fmt: skip


def _routed(summary: ExportSummary) -> dict[str, list[str]]:
    return {Path(p).name: sorted(read_list(p)["customer_id"]) for p in summary.files["path"]}


def test_a_list_for_an_earlier_date_goes_to_the_current_owner(store: Store, tmp_path: Path) -> None:
    _setup(store)

    summary = _export(store, D1, tmp_path)

    assert _routed(summary) == {
        "everyone_20240601_sms_owner-m1.csv": ["c2"],
        "everyone_20240601_sms_owner-m2.csv": ["c1"],
        "everyone_20240601_sms_unowned.csv": ["c3", "c4"],
    }
    # c5 withdrew: counted against the owner who would have called them now.
    files = summary.files[["owner_id", "owner_name", "kept", "excluded"]].fillna("-")
    assert files.to_dict("records") == [
        {"owner_id": "m1", "owner_name": "m1经理", "kept": 1, "excluded": 0},
        {"owner_id": "m2", "owner_name": "m2经理", "kept": 1, "excluded": 1},
        {"owner_id": "-", "owner_name": "-", "kept": 2, "excluded": 0},
    ]


def test_a_list_dated_after_today_goes_to_the_owner_at_its_date(
    store: Store, tmp_path: Path
) -> None:
    _setup(store)

    summary = _export(store, datetime(2099, 6, 1), tmp_path)

    routed = _routed(summary)
    assert routed["everyone_20990601_sms_owner-m3.csv"] == ["c4"]
    assert pd.Series(routed).map(len).sum() == 4
