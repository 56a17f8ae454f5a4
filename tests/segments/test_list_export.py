"""export_list: consent on every path, masking, secrets, owners, churn lists, Excel-safe files."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from crm_ml.errors import ConfigError, NotFoundError, ValidationError
from crm_ml.segments import Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.headers import read_list
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerIdentity, CustomerOwner, ExportLog, Order, Score

SECRET = "s3cret-key-for-tests-0123456789"
IDS = ["c1", "c2", "c3", "c4", "c5"]
NAMES = {"c1": "张三", "c2": "王小明", "c3": '=HYPERLINK("http://x")', "c4": "𠮷野家", "c5": "李"}
BEFORE = datetime(2024, 3, 1)


def consent(customer: str, status: str, at: datetime = BEFORE, channel: str = "sms") -> dict:
    return {
        "customer_id": customer,
        "channel": channel,
        "purpose": "marketing",
        "updated_at": at,
        "status": status,
        "source": "test",
    }


def setup(store: Store, consents: list[dict]) -> None:
    add_customers(store, IDS, NAMES)
    with store.begin() as conn:
        if consents:
            conn.execute(insert(Consent), consents)
        conn.execute(
            insert(CustomerIdentity),
            [
                {
                    "customer_id": "c1",
                    "kind": "phone",
                    "value": "+8613812345678",
                    "verified": True,
                    "created_at": BEFORE,
                },
                {
                    "customer_id": "c1",
                    "kind": "email",
                    "value": "alice@example.com",
                    "verified": True,
                    "created_at": BEFORE,
                },
                {
                    "customer_id": "c2",
                    "kind": "phone",
                    "value": "+8613900001111",
                    "verified": False,
                    "created_at": BEFORE,
                },
            ],
        )
        conn.execute(
            insert(CustomerOwner),
            [
                {
                    "customer_id": "c1",
                    "valid_from": BEFORE,
                    "owner_id": "m1",
                    "owner_name": "周经理",
                },
                {
                    "customer_id": "c2",
                    "valid_from": BEFORE,
                    "owner_id": "m1",
                    "owner_name": "周经理",
                    "valid_to": datetime(2024, 5, 1),
                },
                {
                    "customer_id": "c2",
                    "valid_from": datetime(2024, 5, 1),
                    "owner_id": "../m2",
                    "owner_name": "吴经理",
                },
                {
                    "customer_id": "c4",
                    "valid_from": datetime(2024, 7, 1),
                    "owner_id": "m1",
                    "owner_name": "周经理",
                },
            ],
        )
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")
    snapshot_segment(store, "everyone", features(revenue_365d=[1.0] * 5), D1)


def read(path: Path) -> pd.DataFrame:
    return read_list(path)  # the code's column names, whatever the header's language


def export(store: Store, out: Path, **kwargs: object) -> object:
    options: dict = {
        "channel": "sms",
        "purpose": "marketing",
        "out_dir": out,
        "secret": SECRET,
        "actor": "analyst",
    }
    options.update(kwargs)
    if options.get("unmask"):
        options.setdefault("unmask_reason", "test: full data checked")
    return export_list(store, "everyone", D1, **options)


def all_rows(summary: object) -> pd.DataFrame:
    return pd.concat([read(p) for p in summary.files["path"]], ignore_index=True)


def test_consent_masking_routing_and_log(store: Store, tmp_path: Path) -> None:
    setup(
        store,
        [
            consent("c1", "granted"),
            consent("c2", "granted"),
            consent("c3", "granted"),
            consent("c3", "withdrawn", datetime(2024, 5, 1)),
            consent("c4", "granted", datetime(2024, 6, 2)),  # after as_of: not yet
            consent("c5", "unknown"),
            consent("c4", "granted", channel="email"),
        ],
    )
    summary = export(store, tmp_path)
    assert (summary.kept, summary.excluded_withdrawn, summary.excluded_unknown) == (2, 1, 2)
    rows = all_rows(summary).set_index("name")
    assert sorted(rows.index) == ["张*", "王**"]
    assert rows.loc["张*", "phone"] == "138****5678"
    assert "email" not in rows.columns  # an SMS list carries the phone only
    assert "customer_id" not in rows.columns
    assert rows.loc["王**", "owner_id"] == "../m2"
    names = sorted(p.name for p in summary.files["path"])
    assert names[0].startswith("everyone_20240601_sms_owner-m1.csv")
    assert names[1].startswith("everyone_20240601_sms_owner-m2-")  # '../' cannot escape
    assert names[2] == "everyone_20240601_sms_unowned.csv"
    assert all(Path(p).parent == tmp_path for p in summary.files["path"])
    with store.connect() as conn:
        logged = conn.execute(select(ExportLog)).all()
    assert len(logged) == 3
    assert {(r.actor, r.segment_id, r.rule_version, r.unmasked) for r in logged} == {
        ("analyst", "everyone", 1, False)
    }
    assert sum(r.rows_kept for r in logged) == 2 and sum(r.rows_excluded for r in logged) == 3


def test_unmask_is_explicit_and_logged(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup(store, [consent("c1", "granted"), consent("c4", "granted")])
    with caplog.at_level(logging.WARNING):
        summary = export(store, tmp_path, unmask=True)
    rows = all_rows(summary).set_index("customer_id")
    assert rows.loc["c1", "phone"] == "13812345678"  # as dialled (see test_dialable_phones)
    assert rows.loc["c4", "name"] == "𠮷野家"
    assert "UNMASKED" in caplog.text
    with store.connect() as conn:
        assert set(conn.execute(select(ExportLog.unmasked)).scalars()) == {True}


def test_pseudonymous_id_is_keyed(store: Store, tmp_path: Path) -> None:
    import hashlib

    setup(store, [consent("c1", "granted")])
    first = all_rows(export(store, tmp_path / "a"))["pseudo_id"].iloc[0]
    other = all_rows(export(store, tmp_path / "b", secret=SECRET + "x"))["pseudo_id"].iloc[0]
    assert len(first) == 64 and first != other
    assert first not in {
        hashlib.sha256(v.encode()).hexdigest() for v in ("c1", "+8613812345678", "13812345678")
    }


@pytest.mark.parametrize("secret", [None, ""])
def test_refuses_without_secret(store: Store, tmp_path: Path, secret: str | None) -> None:
    setup(store, [consent("c1", "granted")])
    with pytest.raises(ConfigError, match="CRM_ML_EXPORT_SECRET"):
        export(store, tmp_path / "lists", secret=secret)
    assert not (tmp_path / "lists").exists()


def test_bad_channel_and_missing_snapshot(store: Store, tmp_path: Path) -> None:
    setup(store, [])
    with pytest.raises(ValidationError, match="Unknown channel 'fax'"):
        export(store, tmp_path, channel="fax")
    with pytest.raises(NotFoundError, match="no snapshot"):
        export_list(
            store,
            "everyone",
            datetime(2024, 9, 1),
            channel="sms",
            purpose="marketing",
            out_dir=tmp_path,
            secret=SECRET,
            actor="a",
        )


def test_excel_safe_csv_round_trip(store: Store, tmp_path: Path) -> None:
    setup(store, [consent(c, "granted") for c in IDS])
    summary = export(store, tmp_path, unmask=True)
    for path in summary.files["path"]:
        assert Path(path).read_bytes().startswith(b"\xef\xbb\xbf")
    rows = all_rows(summary).set_index("customer_id")
    assert rows.loc["c4", "name"] == "𠮷野家"
    assert rows.loc["c3", "name"] == '\'=HYPERLINK("http://x")'
    assert not list(tmp_path.glob(".*"))


def test_churn_list_sorted_by_value_at_risk(store: Store, tmp_path: Path) -> None:
    setup(store, [consent(c, "granted") for c in IDS])
    with store.begin() as conn:
        conn.execute(
            insert(Score),
            [
                {
                    "model_name": "crm-churn",
                    "as_of": datetime(2024, 5, 31),
                    "customer_id": c,
                    "model_version": "1",
                    "probability": p,
                    "band": "high",
                    "scored_at": BEFORE,
                    "reasons": json.dumps(
                        [{"text": f"{c} 90天未购买", "actionable": True, "contribution": 0.3}],
                        ensure_ascii=False,
                    ),
                }
                for c, p in [("c1", 0.9), ("c2", 0.5), ("c3", 0.7), ("c4", 0.2), ("c5", 0.8)]
            ],
        )
        # Value at risk uses the store's 12-month revenue net of refunds, not the features'.
        conn.execute(
            insert(Order),
            [
                {
                    "order_id": f"o-{c}",
                    "customer_id": c,
                    "ordered_at": datetime(2024, 3, 1),
                    "channel": "online",
                    "gross_amount": net,
                    "discount_amount": 0.0,
                    "net_amount": net,
                }
                for c, net in [("c1", 100.0), ("c2", 5000.0), ("c3", 1000.0), ("c4", 9000.0)]
            ],
        )
    save_segment(store, Segment("risky", "p_churn >= 0.5"), actor="t")
    frame = features(revenue_365d=[0.0] * 5)
    summary = export_list(
        store,
        "risky",
        D1,
        channel="sms",
        purpose="marketing",
        out_dir=tmp_path,
        secret=SECRET,
        actor="a",
        unmask=True,
        unmask_reason="test: full data checked",
        features=frame,
    )
    rows = all_rows(summary).sort_values("value_at_risk", key=lambda s: -s.astype(float))
    assert rows["customer_id"].tolist() == ["c2", "c3", "c1", "c5"]
    unowned = read(summary.files.set_index("owner_id", drop=False)["path"].iloc[-1])
    assert unowned["customer_id"].tolist() == ["c3", "c5"]  # sorted within each file
    assert rows.set_index("customer_id").loc["c2", "value_at_risk"] == "2500.00"
    assert rows.set_index("customer_id").loc["c1", "churn_reasons"] == "c1 90天未购买"
    assert rows["suggested_action"].str.len().min() > 0


STATUSES = st.sampled_from(["granted", "withdrawn", "unknown", None])


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    history=st.lists(st.tuples(STATUSES, STATUSES), min_size=5, max_size=5),
    unmask=st.booleans(),
    churn=st.booleans(),
)
def test_property_only_granted_at_as_of_is_exported(
    duckdb_store: Store,
    tmp_path_factory: pytest.TempPathFactory,
    history: list[tuple[str | None, str | None]],
    unmask: bool,
    churn: bool,
) -> None:
    store = duckdb_store
    with store.begin() as conn:
        for table in (Consent, CustomerIdentity, CustomerOwner, ExportLog):
            conn.execute(table.__table__.delete())
    with store.connect() as conn:
        fresh = not conn.execute(select(ExportLog)).first() and not list(
            conn.execute(select(Consent))
        )
    assert fresh
    rows = []
    for customer, (early, late) in zip(IDS, history, strict=True):
        if early:
            rows.append(consent(customer, early, BEFORE))
        if late:
            rows.append(consent(customer, late, datetime(2024, 5, 1)))
        rows.append(consent(customer, "granted", datetime(2024, 6, 2)))  # after as_of
    if not store_has_customers(store):
        setup(store, [])
    with store.begin() as conn:
        conn.execute(insert(Consent), rows)
    expected = {
        c for c, (early, late) in zip(IDS, history, strict=True) if (late or early) == "granted"
    }
    out = tmp_path_factory.mktemp("lists")
    summary = export(store, out, unmask=True, churn=churn)
    got = set(all_rows(summary)["customer_id"]) if summary.kept else set()
    assert got == expected
    assert summary.kept + summary.excluded_withdrawn + summary.excluded_unknown == 5


def store_has_customers(store: Store) -> bool:
    from crm_ml.store.schema import Customer

    with store.connect() as conn:
        return conn.execute(select(Customer.customer_id)).first() is not None
