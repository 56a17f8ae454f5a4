"""Consent over a merged person: lists, rules and features read one decision."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import ibis
import pandas as pd
import pytest
from sqlalchemy import insert

from crm_ml.features import customer_features
from crm_ml.features.backend import fetch, ibis_backend
from crm_ml.features.identity import resolve_id_map
from crm_ml.rules import compile_rule, evaluate_rule
from crm_ml.rules.context import surviving_ids
from crm_ml.segments import Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.lists import consent_for
from crm_ml.store import Store
from crm_ml.store.schema import Consent, Customer, CustomerMerge, Order

AS_OF = datetime(2026, 1, 1)
GRANT_DAY, LATER = datetime(2025, 10, 1), datetime(2025, 12, 15)


def _customer(cid: str, merged_into: str | None = None) -> dict:
    return {
        "customer_id": cid,
        "created_at": datetime(2025, 1, 1),
        "status": "merged" if merged_into else "active",
        "merged_into": merged_into,
        "is_member": True,
    }


def _consent(cid: str, status: str, at: datetime) -> dict:
    return {
        "customer_id": cid,
        "channel": "sms",
        "purpose": "marketing",
        "updated_at": at,
        "status": status,
        "source": "pos",
    }


def _merged_pair(store: Store, consents: list[dict]) -> None:
    """0002 merged into 0001 by the source system (customer.merged_into, no customer_merge row)."""
    with store.begin() as conn:
        conn.execute(insert(Customer), [_customer("0001"), _customer("0002", "0001")])
        conn.execute(insert(Consent), consents)
        conn.execute(
            insert(Order),
            [
                {
                    "order_id": "o1",
                    "customer_id": "0001",
                    "ordered_at": datetime(2025, 12, 20),
                    "channel": "offline",
                    "gross_amount": 100.0,
                    "discount_amount": 0.0,
                    "net_amount": 100.0,
                }
            ],
        )


def _views(store: Store) -> tuple[str, bool, int]:
    """The list's consent, the consent() rule and the feature for 0001 at AS_OF."""
    ids = pd.Index(["0001"], name="customer_id")
    with store.connect() as conn:
        listed = consent_for(conn, ids, "sms", "marketing", AS_OF).loc["0001"]
    frame = pd.DataFrame(index=ids)
    ruled = evaluate_rule(store, compile_rule('consent("sms", "marketing")'), frame, AS_OF)
    feature = customer_features(store, AS_OF).loc["0001", "consent_sms_marketing"]
    return str(listed), "0001" in ruled, int(feature)


@pytest.mark.parametrize(
    ("consents", "expected"),
    [
        # The survivor granted; the same person withdrew later on the old, merged-away card.
        ([_consent("0001", "granted", GRANT_DAY), _consent("0002", "withdrawn", LATER)],
         ("withdrawn", False, 0)),
        # Withdrawn on the old card, granted later on the survivor: the later grant wins.
        ([_consent("0002", "withdrawn", GRANT_DAY), _consent("0001", "granted", LATER)],
         ("granted", True, 1)),
        # Granted on the old card only: the person consented.
        ([_consent("0002", "granted", GRANT_DAY)], ("granted", True, 1)),
        # Two decisions at the same instant: the more protective one wins.
        ([_consent("0001", "granted", LATER), _consent("0002", "withdrawn", LATER)],
         ("withdrawn", False, 0)),
        # A grant and an unknown answer at the same instant: unknown (no consent) wins.
        ([_consent("0002", "granted", LATER), _consent("0001", "unknown", LATER)],
         ("unknown", False, 0)),
    ],
)  # fmt: skip
def test_consent_follows_the_merge_as_the_features_do(
    store: Store, consents: list[dict], expected: tuple[str, bool, int]
) -> None:
    _merged_pair(store, consents)
    assert _views(store) == expected


def test_surviving_ids_match_the_features_id_map(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                _customer("a"),
                _customer("b", "a"),  # imported merge
                _customer("c", "b"),  # chain c -> b -> a
                _customer("d", "zzz"),  # customer_merge is authoritative over merged_into
                _customer("e", "e"),  # a self-merge is no merge
            ],
        )
        conn.execute(
            insert(CustomerMerge),
            [{"merged_id": "d", "surviving_id": "a", "merged_at": LATER, "reason": "dup"}],
        )
    with store.connect() as conn:
        mine = surviving_ids(conn)
    with ibis_backend(store) as con:
        id_map = resolve_id_map(con)
        assert id_map is not None
        theirs = fetch(id_map.order_by(ibis._.merged_id))
    assert mine == {"b": "a", "c": "a", "d": "a"}
    assert mine == dict(zip(theirs["merged_id"], theirs["surviving_id"], strict=True))


@pytest.mark.parametrize(
    ("consents", "kept"),
    [
        ([_consent("0001", "granted", GRANT_DAY), _consent("0002", "withdrawn", LATER)], 0),
        ([_consent("0002", "withdrawn", GRANT_DAY), _consent("0001", "granted", LATER)], 1),
    ],
)
def test_export_list_excludes_a_person_who_withdrew_on_a_merged_record(
    store: Store, tmp_path: Path, consents: list[dict], kept: int
) -> None:
    _merged_pair(store, consents)
    save_segment(store, Segment("buyers", "orders_lifetime >= 1"), actor="t")
    frame = pd.DataFrame({"orders_lifetime": [1]}, index=pd.Index(["0001"], name="customer_id"))
    snapshot_segment(store, "buyers", frame, AS_OF)
    summary = export_list(
        store, "buyers", AS_OF, channel="sms", purpose="marketing", out_dir=tmp_path,
        secret="merged-consent-secret-0123456789", actor="t",
    )  # fmt: skip
    assert (summary.kept, summary.excluded_withdrawn) == (kept, 1 - kept)


def test_export_list_honours_a_withdrawal_made_after_its_as_of(store: Store, tmp_path: Path):
    """A list re-run for an earlier date is still sent now: today's withdrawal wins."""
    after = datetime(2026, 1, 20)
    _merged_pair(
        store, [_consent("0001", "granted", GRANT_DAY), _consent("0002", "withdrawn", after)]
    )
    save_segment(store, Segment("buyers", "orders_lifetime >= 1"), actor="t")
    frame = pd.DataFrame({"orders_lifetime": [1]}, index=pd.Index(["0001"], name="customer_id"))
    snapshot_segment(store, "buyers", frame, AS_OF)
    with store.connect() as conn:  # at AS_OF the grant stood, as the rules and features see it
        assert consent_for(conn, pd.Index(["0001"]), "sms", "marketing", AS_OF).iloc[0] == "granted"
    summary = export_list(
        store, "buyers", AS_OF, channel="sms", purpose="marketing", out_dir=tmp_path,
        secret="merged-consent-secret-0123456789", actor="t",
    )  # fmt: skip
    assert (summary.kept, summary.excluded_withdrawn) == (0, 1)
