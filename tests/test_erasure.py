"""Erasing a person on request: nothing that names or reaches them is left in the store.

C1 is the person (C2, an old card record, was merged into C1); C3 is someone
else and must not change. The person's personal values are listed in
``PERSONAL`` and looked for in every cell of every table afterwards.
"""

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import String, func, select

from crm_ml import erasure as erasure_module
from crm_ml.analysis.customer_360 import customer_360
from crm_ml.erasure import ERASED_FIELDS, erase_customer
from crm_ml.errors import LoadRejectedError, NotFoundError, ValidationError
from crm_ml.rules.context import consent_status_at
from crm_ml.segments.lists import contact_details
from crm_ml.store import Store, import_file, init_store, upgrade_store
from crm_ml.store.export import export_parquet
from crm_ml.store.merge import merge_customers
from crm_ml.store.schema import (
    CONSENT_CHANNELS,
    CONSENT_PURPOSES,
    Base,
    ErasedCustomer,
    StoreExport,
)

T = datetime(2024, 1, 1)
P1, P3 = "+8613800138000", "+8613900139000"
PERSONAL = (
    "王芳",
    "王小芳",
    "1990-05-01",
    "上海",
    "杭州",
    "13800138000",
    "138****8000",
    "wang@example.com",
    "M0001",
    "wx_wangfang",
    "2023-03-03",
    "投诉",
    "南京西路",
    "外婆",
)


def _customer(cid: str, name: str, **extra) -> dict:
    blank = dict.fromkeys(("gender", "birth_date", "city", "city_tier", "acquisition_channel"))
    base = {"customer_id": cid, "name": name, "is_member": True, "created_at": T, **blank}
    return base | {"status": "active", "merged_into": None} | extra


def _identity(cid: str, kind: str, value: str) -> dict:
    return {"customer_id": cid, "kind": kind, "value": value, "verified": True, "created_at": T}


def _score(cid: str) -> dict:
    return {
        "model_name": "churn",
        "as_of": T,
        "customer_id": cid,
        "model_version": "1",
        "probability": 0.5,
        "band": "medium",
        "reasons": '[{"text": "最近 30 天未购买"}]',
        "scored_at": T,
    }


ROWS = {
    "customer": [
        _customer(
            "C1",
            "王芳",
            gender="female",
            birth_date=datetime(1990, 5, 1),
            city="上海",
            city_tier=1,
            acquisition_channel="app",
        ),
        _customer("C2", "王小芳", city="杭州", status="merged", merged_into="C1"),
        _customer("C3", "李雷", city="北京", gender="male"),
    ],
    "customer_merge": [
        {
            "merged_id": "C2",
            "surviving_id": "C1",
            "merged_at": T,
            "reason": "strong identity match: phone +86138****8000 (verified)",
            "actor": "steward",
        }
    ],
    "customer_identity": [
        _identity("C1", "phone", P1),
        _identity("C1", "email", "wang@example.com"),
        _identity("C1", "member_card", "M0001"),
        _identity("C2", "wechat", "wx_wangfang"),
        _identity("C3", "phone", P3),
    ],
    "custom_field": [
        {"field_id": "F1", "name": "baby_birthday", "label": "宝宝生日", "data_type": "date"}
    ],
    "custom_field_value": [
        {"customer_id": "C1", "field_id": "F1", "value": "2023-03-03", "updated_at": T},
        {"customer_id": "C3", "field_id": "F1", "value": "2022-01-01", "updated_at": T},
    ],
    "customer_change": [
        {
            "change_id": "k1",
            "customer_id": "C1",
            "field": "name",
            "old_value": "王小芳",
            "new_value": "王芳",
            "changed_at": T,
            "actor": "import",
        },
        {
            "change_id": "k3",
            "customer_id": "C3",
            "field": "city",
            "old_value": "天津",
            "new_value": "北京",
            "changed_at": T,
            "actor": "import",
        },
    ],
    "consent": [
        {
            "customer_id": cid,
            "channel": "sms",
            "purpose": "marketing",
            "updated_at": T,
            "status": "granted",
            "source": "pos",
        }
        for cid in ("C1", "C3")
    ],
    "orders": [
        {
            "order_id": oid,
            "customer_id": cid,
            "ordered_at": T,
            "channel": "offline",
            "gross_amount": 100.0,
            "discount_amount": 0.0,
            "net_amount": 100.0,
        }
        for oid, cid in (("O1", "C1"), ("O2", "C2"), ("O3", "C3"))
    ],
    "behavior_event": [
        {
            "event_id": eid,
            "customer_id": cid,
            "event_type": "complaint",
            "occurred_at": T,
            "detail": detail,
        }
        for eid, cid, detail in (("E1", "C1", "王芳 13800138000 投诉"), ("E3", "C3", "slow"))
    ],
    "points_ledger": [
        {
            "entry_id": eid,
            "customer_id": cid,
            "posted_at": T,
            "kind": "adjust",
            "points": 500,
            "note": note,
        }
        for eid, cid, note in (
            ("PT1", "C1", "客服补偿：王芳 13800138000 南京西路"),
            ("PT3", "C3", "goodwill"),
        )
    ],
    "tier_change": [
        {
            "customer_id": cid,
            "changed_at": T,
            "from_tier": None,
            "to_tier": "T0",
            "direction": "initial",
            "reason": reason,
        }
        for cid, reason in (("C2", "门店开卡，外婆代办"), ("C3", "joined"))
    ],
    "score": [_score(c) for c in ("C1", "C2", "C3")],
    "customer_tag": [
        {
            "customer_id": cid,
            "tag_id": "vip",
            "valid_from": T,
            "source": "manual",
            "actor": "am",
            "reason": "王芳 is a friend" if cid == "C1" else "vip",
        }
        for cid in ("C1", "C3")
    ],
    "segment_member": [
        {"segment_id": "S1", "as_of": T, "customer_id": c} for c in ("C1", "C2", "C3")
    ],
}


def _insert_all(store: Store) -> None:
    with store.begin() as conn:
        for table, rows in ROWS.items():
            conn.execute(Base.metadata.tables[table].insert(), rows)


def _everything(store: Store) -> dict[str, list[tuple]]:
    with store.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for name, table in Base.metadata.tables.items()
            if name not in ("schema_info",)
        }


def _rows_of(store: Store, customer_id: str) -> dict[str, list[tuple]]:
    found = {}
    with store.connect() as conn:
        for name, table in Base.metadata.tables.items():
            if "customer_id" in table.c:
                query = select(table).where(table.c.customer_id == customer_id)
                found[name] = sorted(map(tuple, conn.execute(query)), key=repr)
    return found


@pytest.fixture
def people(store: Store) -> Store:
    _insert_all(store)
    return store


def test_erasure_leaves_no_personal_value_anywhere_in_the_store(people):
    erase_customer(people, "C2", actor="合规官", reason="ticket DPO-17")
    cells = [str(v) for rows in _everything(people).values() for row in rows for v in row]
    assert [(p, c) for p in PERSONAL for c in cells if p in c] == []


def test_erasure_reaches_the_whole_person_and_counts_each_table(people):
    result = erase_customer(people, "C2", actor="合规官", reason="ticket DPO-17")
    assert result.customer_id == "C2"
    assert result.person_ids == ("C1", "C2")
    assert dict(result.rows) == {
        "customer": 2,
        "custom_field_value": 1,
        "customer_identity": 4,
        "customer_change": 1,
        "behavior_event": 1,
        "points_ledger": 1,
        "tier_change": 1,
        "customer_merge": 1,
        "consent": 2 * len(CONSENT_CHANNELS) * len(CONSENT_PURPOSES),
        "score": 2,
        "customer_tag": 1,
        "segment_member": 2,
        "erased_customer": 2,
    }


#: Text columns of tables keyed by customer that hold codes, ids or staff names, never
#: what a customer or an agent typed about the customer.
CODED_TEXT = {
    "behavior_event": {"event_id", "event_type", "channel", "touchpoint", "product_id"},
    "campaign_contact": {"campaign_id", "contact_group", "order_id"},
    "consent": {"channel", "purpose", "status", "source"},
    "customer": {"status", "merged_into"},
    "customer_change": {"change_id", "field", "actor"},
    "coupon": {"coupon_id", "campaign_id", "order_id"},
    "customer_owner": {"owner_id", "owner_name"},
    "orders": {"order_id", "channel", "store_id"},
    "points_ledger": {"entry_id", "kind", "order_id"},
    "score": {"model_name", "model_version", "band", "reasons"},
    "segment_member": {"segment_id"},
    "stored_value_ledger": {"entry_id", "kind", "order_id"},
    "tier_change": {"from_tier", "to_tier", "direction"},
    "erased_customer": {"change_id"},
}


def test_every_free_text_about_a_customer_is_erased_or_declared_coded():
    # A text column added to a customer's table must be scrubbed by the erasure or
    # declared here as codes: free text is where people type names and numbers.
    reached = {
        **{t: set(c) for t, c in erasure_module.FREE_TEXT.items()},
        "customer": {"name", *ERASED_FIELDS},
        "customer_change": {"old_value", "new_value"},
        **{t: {"*"} for t in (*erasure_module.DERIVED_TABLES, "customer_identity")},
        "custom_field_value": {"*"},
    }
    unclassified = []
    for name, table in Base.metadata.tables.items():
        if "customer_id" not in table.c or "*" in reached.get(name, ()):
            continue
        for column in table.c:
            text = isinstance(column.type, String)
            known = reached.get(name, set()) | CODED_TEXT.get(name, set()) | {"customer_id"}
            if text and column.name not in known:
                unclassified.append(f"{name}.{column.name}")
    assert unclassified == []


def test_erasure_keeps_orders_and_events_and_leaves_others_alone(people):
    before = _rows_of(people, "C3")
    erase_customer(people, "C1", actor="合规官", reason="ticket DPO-17")
    assert _rows_of(people, "C3") == before
    after = _everything(people)
    assert sorted(r[0] for r in after["orders"]) == ["O1", "O2", "O3"]
    assert sorted(r[0] for r in after["behavior_event"]) == ["E1", "E3"]
    table = Base.metadata.tables["customer"]
    with people.connect() as conn:
        customer = {r["customer_id"]: r for r in conn.execute(select(table)).mappings()}
    assert {f: customer["C1"][f] for f in ERASED_FIELDS} == dict.fromkeys(ERASED_FIELDS)
    assert (customer["C1"]["created_at"], customer["C1"]["is_member"]) == (T, True)
    assert (customer["C2"]["status"], customer["C2"]["merged_into"]) == ("merged", "C1")


def test_every_list_leaves_the_person_out_and_has_no_contact_for_them(people):
    erase_customer(people, "C1", actor="合规官", reason="ticket DPO-17")
    with people.connect() as conn:
        statuses = {
            (channel, purpose): consent_status_at(conn, channel, purpose, None).get("C1")
            for channel in CONSENT_CHANNELS
            for purpose in CONSENT_PURPOSES
        }
        details = contact_details(conn, pd.Index(["C1", "C3"]))
    assert set(statuses.values()) == {"withdrawn"}
    assert details.loc["C1"].isna().all()
    assert details.loc["C3", "phone"] == P3


def test_the_audit_row_says_who_when_and_why_and_nothing_about_the_person(people):
    result = erase_customer(people, "C2", actor=" 合规官 ", reason="ticket DPO-17")
    changes = _rows_of(people, "C2")["customer_change"]
    assert len(changes) == 1
    change_id, customer_id, field, old, new, at, actor = changes[0]
    assert change_id.startswith("erasure:")
    assert (customer_id, field, old, new, at, actor) == (
        "C2",
        "status",
        None,
        "erased C1, C2: ticket DPO-17",
        result.erased_at,
        "合规官",
    )


def test_the_summary_says_what_it_could_not_reach(people):
    text = erase_customer(people, "C2", actor="合规官", reason="ticket DPO-17").summary()
    assert "Erased customer C2 (records C1, C2)" in text
    assert "  customer: 2 profile(s) anonymised\n  custom_field_value: 1 deleted\n" in text
    assert "  customer_identity: 4 deleted" in text
    assert "  consent: 30 withdrawal(s) recorded" in text
    assert "  erased_customer: 2 record(s) marked erased (left out of scores, tags" in text
    assert "reports/" in text
    assert "MLflow" in text
    assert "`crm-ml lists find C2`" in text


def test_the_summary_names_the_store_exports_still_on_disk(people, tmp_path: Path):
    kept, deleted = tmp_path / "kept", tmp_path / "deleted"
    for folder in (kept, deleted, kept):  # kept twice: its latest export is shown
        export_parquet(people, folder, tables=["customer"], actor="analyst")
    shutil.rmtree(deleted)

    result = erase_customer(people, "C2", actor="合规官", reason="ticket DPO-17")

    assert [copy.folder for copy in result.store_exports] == [str(kept)]
    with people.connect() as conn:
        latest = conn.execute(select(func.max(StoreExport.exported_at))).scalar_one()
    assert result.store_exports[0].exported_at == latest
    text = result.summary()
    assert "1 store export(s) made before the erasure still hold the person, unmasked" in text
    assert f"  {kept}  (exported {latest:%Y-%m-%d %H:%M:%S} UTC by analyst)" in text
    assert str(deleted) not in text


@pytest.mark.parametrize(
    ("customer_id", "actor", "reason", "error", "match"),
    [
        ("C9", "合规官", "ticket", NotFoundError, "'C9' is not in the store"),
        ("C1", " ", "ticket", ValidationError, "Erasing a customer needs an actor and a reason"),
        ("C1", "合规官", "", ValidationError, "Erasing a customer needs an actor and a reason"),
    ],
)
def test_an_unknown_id_or_a_blank_actor_or_reason_is_refused_and_nothing_changes(
    people, customer_id, actor, reason, error, match
):
    before = _everything(people)
    with pytest.raises(error, match=match):
        erase_customer(people, customer_id, actor=actor, reason=reason)
    assert _everything(people) == before


def test_a_failure_part_way_leaves_the_store_as_it_was(people, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    before = _everything(people)
    monkeypatch.setattr(erasure_module, "_record_erasure", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        erase_customer(people, "C1", actor="合规官", reason="ticket DPO-17")
    assert _everything(people) == before


def test_customer_360_shows_nothing_personal_after_erasure(duckdb_store):
    _insert_all(duckdb_store)
    erase_customer(duckdb_store, "C1", actor="合规官", reason="ticket DPO-17")
    view = customer_360(duckdb_store, "C2", "2024-06-01", unmask=True)
    shown = [view.profile, view.identities, view.events, view.tags, view.scores]
    cells = [str(v) for frame in shown for v in frame.astype(str).to_numpy().ravel()]
    assert [(p, c) for p in PERSONAL for c in cells if p in c] == []
    assert view.identities.empty
    assert list(view.orders["order_id"]) == ["O1", "O2"]
    # Blank because erased, and it says so: a blank profile alone reads as missing data.
    with duckdb_store.connect() as conn:
        erased_at = min(conn.execute(select(ErasedCustomer.erased_at)).scalars())
    assert view.profile.at["erased_on_request", "value"] == f"{erased_at:%Y-%m-%d %H:%M}"
    other = customer_360(duckdb_store, "C3", "2024-06-01").profile
    assert other.at["erased_on_request", "value"] == ""


def test_a_store_moved_after_an_erasure_keeps_its_audit_row(duckdb_store, tmp_path: Path):
    _insert_all(duckdb_store)
    erase_customer(duckdb_store, "C1", actor="合规官", reason="ticket DPO-17")
    out = tmp_path / "export"
    tables = ("customer", "customer_change", "erased_customer")
    export_parquet(duckdb_store, out, tables=tables)
    moved = Store(f"duckdb:///{tmp_path / 'moved.duckdb'}", create=True)
    init_store(moved)
    for table in tables:
        import_file(moved, table, out / table, timezone="UTC", reject_dir=tmp_path)
    assert (
        _rows_of(moved, "C1")["customer_change"] == _rows_of(duckdb_store, "C1")["customer_change"]
    )
    assert _marks(moved) == _marks(duckdb_store) != []
    moved.dispose()


def _marks(store: Store) -> list[tuple]:
    with store.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(ErasedCustomer.__table__).order_by("customer_id"))
        ]


def test_every_record_of_the_person_is_marked_erased_once(people):
    first = erase_customer(people, "C2", actor="合规官", reason="ticket DPO-17")
    again = erase_customer(people, "C1", actor="合规官", reason="ticket DPO-18")
    (audit,) = _rows_of(people, "C2")["customer_change"]
    assert again.rows["erased_customer"] == 0  # each record keeps the date it was first erased
    assert _marks(people) == [("C1", first.erased_at, audit[0]), ("C2", first.erased_at, audit[0])]


def test_an_erasure_made_before_the_marks_existed_is_marked_by_the_upgrade(people):
    erase_customer(people, "C2", actor="合规官", reason="ticket DPO-17: by phone")
    marks = _marks(people)
    with people.begin() as conn:  # the store as the release before schema 4 left it
        ErasedCustomer.__table__.drop(conn)
        conn.execute(Base.metadata.tables["schema_info"].update().values(version=3))
    upgrade_store(people)
    assert _marks(people) == marks


CUSTOMER_FILE = """\
customer_id,name,gender,birth_date,city,city_tier,acquisition_channel,created_at
C1,王芳,female,1990-05-01,上海,1,app,2024-01-01
C2,王小芳,,,杭州,,,2024-01-01
C3,李雷,male,,天津,,,2024-01-01
"""
IDENTITY_FILE = """\
customer_id,kind,value,verified,created_at
C1,phone,13800138000,Y,2024-01-01
C1,email,wang@example.com,Y,2024-01-01
C2,wechat,wx_wangfang,Y,2024-01-01
C3,phone,13900139000,Y,2024-01-01
"""


def _import(store: Store, folder: Path, table: str, name: str, body: str):
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return import_file(store, table, path, timezone="UTC", as_of="2025-01-01", reject_dir=folder)


def test_importing_old_customer_and_identity_files_again_does_not_bring_the_person_back(
    people, tmp_path: Path
):
    erase_customer(people, "C1", actor="合规官", reason="ticket DPO-17")

    customers = _import(people, tmp_path, "customer", "customers.csv", CUSTOMER_FILE)
    identities = _import(people, tmp_path, "customer_identity", "identities.csv", IDENTITY_FILE)

    cells = [str(v) for rows in _everything(people).values() for row in rows for v in row]
    assert [(p, c) for p in PERSONAL for c in cells if p in c] == []
    assert (customers.updated, customers.unchanged, customers.rejected) == (1, 0, 0)  # C3's city
    assert (identities.inserted, identities.unchanged, identities.rejected) == (0, 1, 0)
    assert customers.warnings == (
        "2 row(s) of customers.csv (lines 2, 3) belong to 2 customer(s) erased on request and "
        "were skipped: 'C1', 'C2'. Loading them would put back their name and profile, which "
        "the erasure removed. Remove these customers from the source extract; their orders, "
        "points and events still load.",
    )
    (warning,) = identities.warnings
    assert warning.startswith(
        "3 row(s) of identities.csv (lines 2, 3, 4) belong to 2 customer(s) erased on request"
    )
    assert "put back their phones, emails, WeChat ids and member cards" in warning
    assert "customer ← " in customers.summary() and "customers.csv" in customers.summary()
    assert "  warning: 2 row(s) of customers.csv" in customers.summary()
    assert _rows_of(people, "C1")["customer_identity"] == []
    assert _rows_of(people, "C2")["customer_identity"] == []


def test_their_custom_fields_and_grants_are_skipped_and_their_orders_still_load(
    people, tmp_path: Path
):
    erase_customer(people, "C1", actor="合规官", reason="ticket DPO-17")
    values = _import(
        people, tmp_path, "custom_field_value", "fields.csv",
        "customer_id,field_id,value,updated_at\nC1,F1,2023-03-03,2024-06-01\n",
    )  # fmt: skip
    consent = _import(
        people, tmp_path, "consent", "consent.csv",
        "customer_id,channel,purpose,updated_at,status,source\n"
        "C1,sms,marketing,2024-12-01,granted,pos\n"
        "C2,email,marketing,2024-12-01,withdrawn,pos\n"
        "C3,email,marketing,2024-12-01,granted,pos\n",
    )  # fmt: skip
    orders = _import(
        people, tmp_path, "orders", "orders.csv",
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O4,C1,2024-06-01,offline,80,80\n",
    )  # fmt: skip
    assert (values.inserted, len(values.warnings)) == (0, 1)
    assert (consent.inserted, len(consent.warnings)) == (2, 1)  # the withdrawal and C3's grant
    assert "1 row(s) of consent.csv (line 2) belong to 1 customer(s)" in consent.warnings[0]
    assert (orders.inserted, orders.warnings) == (1, ())
    with people.connect() as conn:
        status = consent_status_at(conn, "sms", "marketing", None)
    assert status["C1"] == "withdrawn"


def test_a_bad_row_of_an_erased_customer_still_refuses_the_whole_file(people, tmp_path: Path):
    erase_customer(people, "C1", actor="合规官", reason="ticket DPO-17")
    before = _everything(people)
    body = CUSTOMER_FILE.replace("上海,1,app", "上海,9,app")  # no city tier 9
    with pytest.raises(LoadRejectedError, match=r"customers\.csv:2 city_tier"):
        _import(people, tmp_path, "customer", "customers.csv", body)
    assert _everything(people) == before


@pytest.mark.parametrize(("merged", "surviving"), [("C3", "C1"), ("C1", "C3")])
def test_an_erased_record_is_never_merged_into_or_from(people, merged, surviving):
    erase_customer(people, "C3", actor="合规官", reason="ticket DPO-17")
    before = _everything(people)
    plan = pd.DataFrame({"merged_id": [merged], "surviving_id": [surviving]})
    with pytest.raises(ValidationError, match=r"erased on request \(C3\): .*Nothing was merged"):
        merge_customers(people, plan, at=datetime(2025, 1, 1), actor="steward")
    assert _everything(people) == before
