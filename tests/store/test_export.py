from datetime import datetime

import pyarrow as pa
import pyarrow.dataset as ds
from sqlalchemy import insert

from crm_ml.store.export import export_parquet
from crm_ml.store.schema import Customer, Order


def _fill(store):
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "customer_id": "000123",
                    "name": "𠮷田",
                    "is_member": True,
                    "status": "active",
                    "created_at": datetime(2023, 5, 1, 8, 30),
                },
                {
                    "customer_id": "000124",
                    "name": "Li",
                    "is_member": False,
                    "status": "active",
                    "created_at": datetime(2024, 1, 2),
                },
            ],
        )
        conn.execute(
            insert(Order),
            [
                {
                    "order_id": "o1",
                    "customer_id": "000123",
                    "ordered_at": datetime(2023, 12, 31, 23, 59),
                    "channel": "online",
                    "gross_amount": 100.5,
                    "discount_amount": 0.5,
                    "net_amount": 100.0,
                },
                {
                    "order_id": "o2",
                    "customer_id": "000123",
                    "ordered_at": datetime(2024, 1, 1, 0, 0),
                    "channel": "offline",
                    "gross_amount": 20.0,
                    "discount_amount": 0.0,
                    "net_amount": 20.0,
                },
            ],
        )


def test_tables_round_trip_with_declared_types_and_year_partitions(store, tmp_path):
    _fill(store)
    summary = export_parquet(store, tmp_path / "pq", tables=["customer", "orders", "coupon"])
    assert summary["rows"].to_dict() == {"customer": 2, "orders": 2, "coupon": 0}

    customers = ds.dataset(tmp_path / "pq" / "customer").to_table().to_pandas()
    assert customers.sort_values("customer_id")["name"].tolist() == ["𠮷田", "Li"]
    assert set(customers["customer_id"]) == {"000123", "000124"}

    orders = ds.dataset(tmp_path / "pq" / "orders", partitioning="hive").to_table()
    # Marked as UTC, so that an importer never reads the store's times in a local zone.
    assert orders.schema.field("ordered_at").type == pa.timestamp("us", tz="UTC")
    assert orders.schema.field("net_amount").type == pa.float64()
    assert sorted(p.name for p in (tmp_path / "pq" / "orders").iterdir()) == [
        "year=2023",
        "year=2024",
    ]
    rows = orders.to_pandas().sort_values("order_id")
    assert rows["ordered_at"].dt.tz_localize(None).tolist() == [
        datetime(2023, 12, 31, 23, 59),
        datetime(2024, 1, 1),
    ]
    assert (tmp_path / "pq" / "coupon").is_dir()


def test_export_again_replaces_the_previous_export(duckdb_store, tmp_path):
    _fill(duckdb_store)
    export_parquet(duckdb_store, tmp_path / "pq", tables=["orders"])
    export_parquet(duckdb_store, tmp_path / "pq", tables=["orders"])
    assert ds.dataset(tmp_path / "pq" / "orders", partitioning="hive").count_rows() == 2
    assert not [p for p in (tmp_path / "pq").iterdir() if p.name.startswith(".")]


def test_default_export_holds_what_spark_features_read(duckdb_store, tmp_path):
    from crm_ml.spark import SPARK_TABLES

    summary = export_parquet(duckdb_store, tmp_path / "pq")
    assert set(SPARK_TABLES) <= set(summary.index)
