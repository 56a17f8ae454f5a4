import pytest
from sqlalchemy import text

from crm_ml.errors import SchemaVersionError
from crm_ml.store import Store, check_store, init_store, table_counts
from crm_ml.store.schema import SCHEMA_VERSION, SOURCE_TABLES


def test_init_creates_every_table_and_records_version(store):
    counts = table_counts(store)
    assert set(SOURCE_TABLES) <= set(counts.index)
    assert {"customer_tag", "segment_member", "score", "export_log"} <= set(counts.index)
    assert (counts["rows"] == 0).all()
    with store.connect() as conn:
        assert check_store(conn) == SCHEMA_VERSION


def test_init_twice_is_harmless(store):
    assert init_store(store) == SCHEMA_VERSION
    with store.connect() as conn:
        assert conn.execute(text("select count(*) from schema_info")).scalar_one() == 1


def test_chinese_text_and_leading_zero_ids_round_trip(store):
    with store.begin() as conn:
        conn.execute(
            text(
                "insert into customer (customer_id, name, is_member, status, created_at) "
                "values (:id, :name, :m, 'active', :t)"
            ),
            {"id": "000123", "name": "𠮷田 张三", "m": True, "t": "2024-01-01 00:00:00"},
        )
    with store.connect() as conn:
        row = conn.execute(text("select customer_id, name from customer")).one()
    assert tuple(row) == ("000123", "𠮷田 张三")


def test_uninitialised_store_says_how_to_create_it(tmp_path):
    st = Store(f"duckdb:///{tmp_path / 'empty.duckdb'}", create=True)
    with pytest.raises(SchemaVersionError, match="crm-ml init"), st.connect() as conn:
        check_store(conn)


def test_newer_schema_version_is_refused(store):
    with store.begin() as conn:
        conn.execute(text("update schema_info set version = 999"))
    with pytest.raises(SchemaVersionError, match="schema version 999"):
        init_store(store)
