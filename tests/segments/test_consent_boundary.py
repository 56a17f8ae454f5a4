"""A consent decision made at exactly ``as_of`` is an event at the cut: not yet counted.

Features count events with a time ``< as_of``; rules and lists read consent the
same way, so ``consent_sms_marketing``, ``consent("sms", "marketing")`` and a
list of that date agree. The latest decision (``on=None``) still includes it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import insert

from crm_ml.features import customer_features
from crm_ml.rules import compile_rule, consent_status_at, evaluate_rule
from crm_ml.segments import Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.lists import consent_for
from crm_ml.store import Store
from crm_ml.store.schema import Consent, Customer, Order

AS_OF = datetime(2026, 1, 1)
BEFORE = datetime(2025, 10, 1)
IDS = pd.Index(["0001"], name="customer_id", dtype="str")


def _consent(status: str, at: datetime) -> dict:
    return {
        "customer_id": "0001",
        "channel": "sms",
        "purpose": "marketing",
        "updated_at": at,
        "status": status,
        "source": "pos",
    }


def _buyer(store: Store, consents: list[dict]) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [{"customer_id": "0001", "created_at": datetime(2025, 1, 1), "is_member": True}],
        )
        conn.execute(insert(Consent), consents)
        conn.execute(
            insert(Order),
            [{"order_id": "o1", "customer_id": "0001", "ordered_at": datetime(2025, 12, 20),
              "channel": "offline", "gross_amount": 100.0, "discount_amount": 0.0,
              "net_amount": 100.0}],
        )  # fmt: skip


def _views(store: Store) -> tuple[int, bool, str, str]:
    """The feature, the consent() rule, the list's consent at AS_OF, and the latest decision."""
    feature = customer_features(store, AS_OF).loc["0001", "consent_sms_marketing"]
    rule = compile_rule('consent("sms", "marketing")')
    ruled = evaluate_rule(store, rule, pd.DataFrame(index=IDS), AS_OF)
    with store.connect() as conn:
        listed = consent_for(conn, IDS, "sms", "marketing", AS_OF).iloc[0]
        latest = consent_status_at(conn, "sms", "marketing", None).loc["0001"]
    return int(feature), "0001" in ruled, str(listed), str(latest)


def _export(store: Store, tmp_path: Path) -> tuple[int, int, int]:
    save_segment(store, Segment("buyers", "orders_lifetime >= 1"), actor="t")
    snapshot_segment(store, "buyers", pd.DataFrame({"orders_lifetime": [1]}, index=IDS), AS_OF)
    summary = export_list(
        store, "buyers", AS_OF, channel="sms", purpose="marketing", out_dir=tmp_path,
        secret="consent-boundary-secret-0123456789", actor="t",
    )  # fmt: skip
    return summary.kept, summary.excluded_withdrawn, summary.excluded_unknown


@pytest.mark.parametrize(
    ("consents", "views", "export"),
    [
        # Granted at the cut: not yet granted at as_of, anywhere; the latest decision has it.
        ([_consent("granted", AS_OF)], (0, False, "unknown", "granted"), (0, 0, 1)),
        # Granted before, withdrawn at the cut: granted at as_of; the list, sent now, honours
        # the withdrawal all the same.
        ([_consent("granted", BEFORE), _consent("withdrawn", AS_OF)],
         (1, True, "granted", "withdrawn"), (0, 1, 0)),
        # Withdrawn before, granted again at the cut: still withdrawn at as_of.
        ([_consent("withdrawn", BEFORE), _consent("granted", AS_OF)],
         (0, False, "withdrawn", "granted"), (0, 1, 0)),
    ],
)  # fmt: skip
def test_a_decision_at_as_of_counts_after_it_everywhere(
    store: Store,
    tmp_path: Path,
    consents: list[dict],
    views: tuple[int, bool, str, str],
    export: tuple[int, int, int],
) -> None:
    _buyer(store, consents)
    assert _views(store) == views
    assert _export(store, tmp_path) == export
