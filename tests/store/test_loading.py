import hashlib
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from import_files import rows, write
from sqlalchemy import CheckConstraint, select, text

from crm_ml.errors import ValidationError
from crm_ml.store import table_counts
from crm_ml.store.loading import LoadResult, import_file, import_frame
from crm_ml.store.schema import SOURCE_TABLES, Base
from crm_ml.store.validation import ROW_RULES, parse_check, table_spec

AS_OF = "2025-01-01"

CUSTOMERS = """\
customer_id,name,gender,birth_date,city,city_tier,is_member,member_since,created_at
000123,𠮷田 张三,F,1990-05-01,上海,1,Y,2023-01-01 09:00,2023-01-01 09:00:00
C2,李四,,,,,,,2023-02-01T10:00:00+08:00
"""
PRODUCTS = "product_id,name,category\nP1,奶粉,baby\nP2,尿布,baby\n"
STORES = "store_id,name,city\nS1,徐汇店,上海\n"
ORDERS = """\
order_id,customer_id,ordered_at,channel,store_id,gross_amount,discount_amount,net_amount
O1,000123,2024-03-01 09:00:00,online,,100,10,90
O2,C2,2024-03-02 23:30:00,Offline,S1,50.5,,50.5
"""
ITEMS = """\
order_id,line_no,product_id,quantity,amount,refund_amount,refunded_at
O1,1,P1,2,60,0,
O1,2,P2,1,40,40,2024-03-05 10:00
"""


def contents(store, *, skip=("schema_info",)) -> dict[str, list[tuple]]:
    out = {}
    with store.connect() as conn:
        for name, table in Base.metadata.tables.items():
            if name not in skip:
                out[name] = sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
    return out


def load_basics(store, folder: Path) -> None:
    for table, name, body in [
        ("customer", "customers.csv", CUSTOMERS),
        ("product", "products.csv", PRODUCTS),
        ("store_location", "stores.csv", STORES),
        ("orders", "orders.csv", ORDERS),
    ]:
        import_file(store, table, write(folder, name, body), as_of=AS_OF)


# --------------------------------------------------------------------------- happy paths


def test_customers_load_with_exact_values(store, tmp_path):
    result = import_file(
        store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF
    )

    counts = (result.rows_read, result.inserted, result.updated, result.unchanged, result.rejected)
    assert counts == (2, 2, 0, 0, 0)
    assert result.reject_report is None and result.warnings == ()
    got = rows(
        store,
        "select customer_id, name, gender, birth_date, city, city_tier, is_member, member_since, "
        "status, created_at from customer order by customer_id",
    )
    ts = datetime
    assert [(r[0], r[1], r[2], r[4], r[5], bool(r[6]), r[8]) for r in got] == [
        ("000123", "𠮷田 张三", "female", "上海", 1, True, "active"),
        ("C2", "李四", None, None, None, False, "active"),
    ]
    with store.connect() as conn:
        typed = conn.execute(
            select(
                Base.metadata.tables["customer"].c["birth_date", "member_since", "created_at"]
            ).order_by(text("customer_id"))
        ).all()
    # Asia/Shanghai 09:00 is 01:00 UTC; a birthday is a day, never shifted.
    assert [tuple(r) for r in typed] == [
        (ts(1990, 5, 1), ts(2023, 1, 1, 1), ts(2023, 1, 1, 1)),
        (None, None, ts(2023, 2, 1, 2)),
    ]


def test_orders_and_items_load_on_every_engine(store, tmp_path):
    load_basics(store, tmp_path)
    result = import_file(store, "order_item", write(tmp_path, "items.csv", ITEMS), as_of=AS_OF)

    assert result.inserted == 2
    assert rows(
        store,
        "select order_id, customer_id, channel, store_id, gross_amount, discount_amount, "
        "net_amount from orders order by order_id",
    ) == [
        ("O1", "000123", "online", None, 100.0, 10.0, 90.0),
        ("O2", "C2", "offline", "S1", 50.5, 0.0, 50.5),
    ]
    assert rows(
        store,
        "select order_id, line_no, product_id, quantity, amount, refund_amount "
        "from order_item order by line_no",
    ) == [("O1", 1, "P1", 2, 60.0, 0.0), ("O1", 2, "P2", 1, 40.0, 40.0)]


def test_timestamps_are_naive_utc_and_compare_correctly(store, tmp_path):
    load_basics(store, tmp_path)
    with store.connect() as conn:
        table = Base.metadata.tables["orders"]
        stamps = conn.execute(select(table.c.ordered_at).order_by(table.c.order_id)).scalars().all()
        # 2024-03-02 23:30 in Shanghai is 15:30 UTC the same day.
        assert stamps == [datetime(2024, 3, 1, 1), datetime(2024, 3, 2, 15, 30)]
        before = (
            conn.execute(
                select(table.c.order_id).where(table.c.ordered_at < datetime(2024, 3, 2, 15, 30))
            )
            .scalars()
            .all()
        )
        at_or_after = (
            conn.execute(
                select(table.c.order_id).where(table.c.ordered_at >= datetime(2024, 3, 2, 15, 30))
            )
            .scalars()
            .all()
        )
    assert (before, at_or_after) == (["O1"], ["O2"])
    if store.dialect == "sqlite":  # one canonical text form, the one SQLAlchemy writes
        assert rows(store, "select ordered_at from orders order by order_id") == [
            ("2024-03-01 01:00:00.000000",),
            ("2024-03-02 15:30:00.000000",),
        ]


def test_explicit_offsets_and_other_zones(store, tmp_path):
    body = (
        "customer_id,created_at\n"
        "A,2024-06-01 09:00:00+08:00\nB,2024-06-01T01:00:00Z\nC,2024-06-01 09:00:00.250\n"
        "D,2024-06-01 09:00\n"
    )
    import_file(
        store, "customer", write(tmp_path, "c.csv", body), timezone="Europe/London", as_of=AS_OF
    )
    with store.connect() as conn:
        table = Base.metadata.tables["customer"]
        got = conn.execute(
            select(table.c.customer_id, table.c.created_at).order_by(table.c.customer_id)
        ).all()
    # London is on summer time (UTC+1) in June; explicit offsets win over the declared zone.
    assert [tuple(r) for r in got] == [
        ("A", datetime(2024, 6, 1, 1)),
        ("B", datetime(2024, 6, 1, 1)),
        ("C", datetime(2024, 6, 1, 8, 0, 0, 250000)),
        ("D", datetime(2024, 6, 1, 8)),
    ]


def test_same_file_twice_changes_nothing(store, tmp_path):
    load_basics(store, tmp_path)
    path = write(tmp_path, "items.csv", ITEMS)
    import_file(store, "order_item", path, as_of=AS_OF)
    before = contents(store, skip=("schema_info", "load_batch"))

    again = import_file(store, "order_item", path, as_of=AS_OF)

    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 2, 0)
    assert contents(store, skip=("schema_info", "load_batch")) == before
    batches = rows(
        store,
        "select table_name, sha256, rows_read, rows_inserted, rows_unchanged from load_batch "
        "where table_name = 'order_item' order by rows_inserted desc",
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert batches == [("order_item", digest, 2, 2, 0), ("order_item", digest, 2, 0, 2)]


def test_changed_customer_is_updated_and_each_field_audited(store, tmp_path):
    import_file(store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF)
    changed = CUSTOMERS.replace("上海,1,Y", "北京,1,N").replace("李四", "李四四")

    result = import_file(store, "customer", write(tmp_path, "customers2.csv", changed), as_of=AS_OF)

    assert (result.inserted, result.updated, result.unchanged) == (0, 2, 0)
    assert rows(store, "select customer_id, name, city from customer order by customer_id") == [
        ("000123", "𠮷田 张三", "北京"),
        ("C2", "李四四", None),
    ]
    audit = rows(
        store,
        "select customer_id, field, old_value, new_value from customer_change "
        "order by customer_id, field",
    )
    assert audit == [
        ("000123", "city", "上海", "北京"),
        ("000123", "is_member", "true", "false"),
        ("C2", "name", "李四", "李四四"),
    ]
    assert {r[0] for r in rows(store, "select actor from customer_change")} == {
        f"import:{result.batch_id}"
    }


def test_update_touches_only_the_columns_the_file_gives(store, tmp_path):
    import_file(store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF)
    partial = "customer_id,city,created_at\n000123,杭州,2023-01-01 09:00:00\n"

    result = import_file(store, "customer", write(tmp_path, "city.csv", partial), as_of=AS_OF)

    assert (result.updated, result.unchanged) == (1, 0)
    assert rows(store, "select name, city, gender from customer where customer_id = '000123'") == [
        ("𠮷田 张三", "杭州", "female")
    ]


def test_parquet_keeps_types_and_reads_naive_times_in_the_zone(store, tmp_path):
    frame = pd.DataFrame(
        {
            "product_id": ["007", "P2"],
            "category": ["baby", "food"],
            "list_price": [199.5, 12.0],
        }
    )
    path = tmp_path / "products.parquet"
    frame.to_parquet(path)
    customers = pd.DataFrame(
        {
            "customer_id": ["000123"],
            "created_at": pd.to_datetime(["2024-01-01 09:00"]),
            "city_tier": [2],
        }
    )
    customers.to_parquet(tmp_path / "customers.parquet")

    assert import_file(store, "product", path, as_of=AS_OF).inserted == 2
    import_file(store, "customer", tmp_path / "customers.parquet", as_of=AS_OF)

    assert rows(store, "select product_id, list_price from product order by product_id") == [
        ("007", 199.5),
        ("P2", 12.0),
    ]
    with store.connect() as conn:
        table = Base.metadata.tables["customer"]
        assert conn.execute(select(table.c.created_at, table.c.city_tier)).one() == (
            datetime(2024, 1, 1, 1),
            2,
        )


def test_dataframe_with_typed_and_zoned_columns(store):
    import_frame(
        store, "customer", pd.DataFrame({"customer_id": ["C1"], "created_at": ["2024-01-01"]})
    )
    points = pd.DataFrame(
        {
            "entry_id": ["E1", "E2"],
            "customer_id": ["C1", "C1"],
            "posted_at": pd.to_datetime(["2024-02-01 08:00", "2024-02-02 08:00"]).tz_localize(
                "UTC"
            ),
            "kind": ["earn", "redeem"],
            "points": [100, -40],
        }
    )

    result = import_frame(store, "points_ledger", points, source="crm export", as_of=AS_OF)

    assert (result.source, result.inserted) == ("crm export", 2)
    assert rows(store, "select sum(points) from points_ledger") == [(60,)]
    with store.connect() as conn:
        table = Base.metadata.tables["points_ledger"]
        stamps = conn.execute(select(table.c.posted_at).order_by(table.c.entry_id)).scalars().all()
    assert stamps == [datetime(2024, 2, 1, 8), datetime(2024, 2, 2, 8)]


def test_identity_values_are_normalised(store, tmp_path):
    import_file(store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF)
    body = (
        "customer_id,kind,value,created_at\n"
        "000123,phone,138-0013-8000,2024-01-01\n"
        "000123,Email, Zhang.San@Example.COM ,2024-01-01\n"
        "C2,wechat,wx_lisi,2024-01-01\n"
    )

    import_file(store, "customer_identity", write(tmp_path, "ids.csv", body), as_of=AS_OF)

    assert rows(store, "select customer_id, kind, value from customer_identity order by kind") == [
        ("000123", "email", "zhang.san@example.com"),
        ("000123", "phone", "+8613800138000"),
        ("C2", "wechat", "wx_lisi"),
    ]


def test_self_reference_may_point_into_the_same_file(store, tmp_path):
    body = (
        "customer_id,status,merged_into,created_at\nA,active,,2024-01-01\nB,merged,A,2024-01-01\n"
    )
    result = import_file(store, "customer", write(tmp_path, "c.csv", body), as_of=AS_OF)
    assert result.inserted == 2


def test_tier_level_change_is_an_update(store, tmp_path):
    import_file(
        store, "tier", write(tmp_path, "t.csv", "tier_id,name,level,min_spend_12m\nT1,银卡,1,0\n")
    )
    result = import_file(
        store,
        "tier",
        write(tmp_path, "t2.csv", "tier_id,name,level,min_spend_12m\nT1,银卡,2,500\n"),
    )
    assert result.updated == 1
    assert rows(store, "select tier_id, level, min_spend_12m from tier") == [("T1", 2, 500.0)]


def test_progress_bar_and_summary(store, tmp_path, capsys):
    result = import_file(
        store, "product", write(tmp_path, "products.csv", PRODUCTS), progress=True, as_of=AS_OF
    )
    assert "import product" in capsys.readouterr().err
    assert result.summary().startswith(
        "product ← " + str(tmp_path / "products.csv") + ": 2 read, 2 inserted, 0 updated, "
        "0 unchanged, 0 rejected"
    )


# One valid row per source table, in SOURCE_TABLES order (references satisfied).
MINIMAL_ROWS = {
    "customer": {"customer_id": "C1", "created_at": "2024-01-01"},
    "customer_identity": {
        "customer_id": "C1",
        "kind": "phone",
        "value": "13800138000",
        "created_at": "2024-01-01",
    },
    "custom_field": {
        "field_id": "F1",
        "name": "baby_birthday",
        "label": "宝宝生日",
        "data_type": "date",
    },
    "custom_field_value": {
        "customer_id": "C1",
        "field_id": "F1",
        "value": "2023-05-01",
        "updated_at": "2024-01-01",
    },
    "customer_owner": {"customer_id": "C1", "valid_from": "2024-01-01", "owner_id": "U1"},
    "consent": {
        "customer_id": "C1",
        "channel": "sms",
        "purpose": "marketing",
        "updated_at": "2024-01-01",
        "status": "Y",
    },
    "product": {"product_id": "P1", "category": "baby"},
    "store_location": {"store_id": "S1"},
    "orders": {
        "order_id": "O1",
        "customer_id": "C1",
        "ordered_at": "2024-01-02",
        "channel": "online",
        "gross_amount": "10",
        "net_amount": "10",
    },
    "order_item": {
        "order_id": "O1",
        "line_no": "1",
        "product_id": "P1",
        "quantity": "1",
        "amount": "10",
    },
    "behavior_event": {
        "event_id": "V1",
        "customer_id": "C1",
        "event_type": "search",
        "occurred_at": "2024-01-02",
    },
    "tier": {"tier_id": "T1", "name": "silver", "level": "1", "min_spend_12m": "0"},
    "tier_change": {
        "customer_id": "C1",
        "changed_at": "2024-01-02",
        "to_tier": "T1",
        "direction": "initial",
    },
    "points_ledger": {
        "entry_id": "E1",
        "customer_id": "C1",
        "posted_at": "2024-01-02",
        "kind": "earn",
        "points": "10",
    },
    "stored_value_ledger": {
        "entry_id": "SV1",
        "customer_id": "C1",
        "posted_at": "2024-01-02",
        "kind": "top_up",
        "amount": "100",
    },
    "campaign": {
        "campaign_id": "M1",
        "name": "春节",
        "channel": "sms",
        "start_at": "2024-01-01",
        "end_at": "2024-02-01",
    },
    "coupon": {
        "coupon_id": "K1",
        "customer_id": "C1",
        "issued_at": "2024-01-02",
        "face_value": "5",
    },
    "campaign_contact": {
        "campaign_id": "M1",
        "customer_id": "C1",
        "contact_group": "control",
        "contacted_at": "2024-01-03",
    },
}


def test_every_source_table_is_importable_twice(store):
    assert list(MINIMAL_ROWS) == list(SOURCE_TABLES)
    for table, row in MINIMAL_ROWS.items():
        assert import_frame(store, table, pd.DataFrame([row]), as_of=AS_OF).inserted == 1, table
    for table, row in MINIMAL_ROWS.items():
        assert import_frame(store, table, pd.DataFrame([row]), as_of=AS_OF).unchanged == 1, table
    counts = table_counts(store)["rows"]
    assert (counts[list(SOURCE_TABLES)] == 1).all()


def test_every_check_constraint_is_enforced_by_the_loader():
    for name in SOURCE_TABLES:
        for constraint in Base.metadata.tables[name].constraints:
            if isinstance(constraint, CheckConstraint):
                parsed = parse_check(str(constraint.sqltext))
                named = {rule.name for rule in ROW_RULES.get(name, ())}
                assert parsed is not None or constraint.name in named, constraint.name


def test_specs_follow_the_schema():
    orders = table_spec("orders")
    assert orders.key == ("order_id",)
    assert orders.required == (
        "order_id",
        "customer_id",
        "ordered_at",
        "channel",
        "gross_amount",
        "net_amount",
    )
    assert orders.column("channel").allowed == ("online", "offline")
    assert orders.column("discount_amount").default == 0.0
    assert table_spec("customer").column("birth_date").kind == "date"
    assert table_spec("campaign").column("control_share").upper.value == 1.0
    assert table_spec("tier").unique == ("level",)
    with pytest.raises(ValidationError, match="Cannot import into table 'score'"):
        table_spec("score")
    with pytest.raises(ValidationError, match=r"'customers'\. Did you mean 'customer'\?"):
        table_spec("customers")


def test_load_result_is_frozen():
    result = LoadResult("t", "s", 1, 1, 0, 0, 0, (), "b", None)
    with pytest.raises(AttributeError):
        result.inserted = 2  # type: ignore[misc]
