"""Moving a store through Parquet: ``crm-ml export parquet`` then ``crm-ml import`` per table.

The round trip must give back the same rows, timestamps included, and so the
same features; the exporter's own year-partitioned folders import as one source.
"""

from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from crm_ml.cli.store import _check_import_table
from crm_ml.demo import generate
from crm_ml.errors import LoadRejectedError, ValidationError
from crm_ml.features import customer_features
from crm_ml.store import Store, init_store
from crm_ml.store.export import export_parquet
from crm_ml.store.loading import import_file
from crm_ml.store.schema import SOURCE_TABLES, Base, Customer

AS_OF = "2026-01-01"
FEATURES_AT = "2025-07-01"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, pd.DataFrame]:
    """A small generated DuckDB store (2,000 customers, 3 years) and its Parquet export."""
    folder = tmp_path_factory.mktemp("roundtrip")
    store = Store(f"duckdb:///{folder / 'source.duckdb'}", create=True)
    init_store(store)
    generate(store, n_customers=2_000, start="2023-01-01", end="2025-12-31", seed=11)
    summary = export_parquet(store, folder / "pq")
    yield store, folder / "pq", summary
    store.dispose()


def _contents(store: Store, name: str) -> list[tuple]:
    """A table's rows as tuples, sorted by key in Python (collations differ between engines)."""
    table = Base.metadata.tables[name]
    key = [list(table.columns).index(c) for c in table.primary_key.columns]
    with store.connect() as conn:
        rows = [tuple(row) for row in conn.execute(select(table)).all()]
    return sorted(rows, key=lambda row: [row[i] for i in key])


def test_an_exported_store_imports_back_unchanged(exported, store, tmp_path):
    source, folder, summary = exported
    for name in SOURCE_TABLES:
        if summary.loc[name, "rows"]:
            # The default --timezone (Asia/Shanghai) must not touch the export's UTC times.
            result = import_file(store, name, folder / name, as_of=AS_OF, reject_dir=tmp_path)
            assert (result.inserted, result.rejected) == (summary.loc[name, "rows"], 0), name
    for name in SOURCE_TABLES:
        assert _contents(store, name) == _contents(source, name), name
    pd.testing.assert_frame_equal(
        customer_features(store, FEATURES_AT), customer_features(source, FEATURES_AT)
    )


def test_importing_a_folder_again_changes_nothing(exported, duckdb_store):
    _, folder, summary = exported
    import_file(duckdb_store, "customer", folder / "customer", as_of=AS_OF)
    again = import_file(duckdb_store, "customer", folder / "customer", as_of=AS_OF)
    assert (again.inserted, again.unchanged) == (0, summary.loc["customer", "rows"])


def test_history_tables_are_exported_and_accepted_by_import(exported):
    _, folder, _ = exported
    assert (folder / "customer_merge").is_dir()
    # Loading them is tested in test_import_history.py; the CLI no longer refuses them.
    _check_import_table("customer_merge")
    _check_import_table("customer_change")


# --------------------------------------------------------------------------- time zones


def _customers(path: Path, created_at: pa.Array) -> Path:
    table = pa.table(
        {
            "customer_id": ["c1"],
            "is_member": [True],
            "status": ["active"],
            "created_at": created_at,
        }
    )
    pq.write_table(table, path)
    return path


def _created_at(store: Store) -> datetime:
    with store.connect() as conn:
        return conn.execute(select(Customer.created_at)).scalar_one()


def test_a_parquet_timestamp_with_a_zone_ignores_timezone(store, tmp_path):
    utc = pa.array([datetime(2024, 1, 1, 3, 0)], pa.timestamp("us", tz="UTC"))
    path = _customers(tmp_path / "aware.parquet", utc)
    import_file(store, "customer", path, timezone="America/New_York", as_of=AS_OF)
    assert _created_at(store) == datetime(2024, 1, 1, 3, 0)


def test_a_naive_parquet_timestamp_is_read_in_timezone(store, tmp_path):
    naive = pa.array([datetime(2024, 1, 1, 3, 0)], pa.timestamp("us"))
    path = _customers(tmp_path / "naive.parquet", naive)
    import_file(store, "customer", path, timezone="Asia/Shanghai", as_of=AS_OF)
    assert _created_at(store) == datetime(2023, 12, 31, 19, 0)


# --------------------------------------------------------------------------- folders


def _orders_folder(folder: Path, bad_net_amount: float) -> Path:
    """An exporter-like orders folder: 2 rows in year=2023, 2 in year=2024."""
    stamps = pa.array(
        [datetime(2023, 5, 1), datetime(2023, 6, 1), datetime(2024, 1, 2), datetime(2024, 2, 3)],
        pa.timestamp("us", tz="UTC"),
    )
    table = pa.table(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["c1"] * 4,
            "ordered_at": stamps,
            "channel": ["online"] * 4,
            "gross_amount": [10.0] * 4,
            "discount_amount": [0.0] * 4,
            "net_amount": [10.0, 10.0, 10.0, bad_net_amount],
        }
    )
    for year, rows in ((2023, table.slice(0, 2)), (2024, table.slice(2, 2))):
        (folder / f"year={year}").mkdir(parents=True)
        pq.write_table(rows, folder / f"year={year}" / "part-0.parquet")
    return folder


def _one_customer(store: Store, tmp_path: Path) -> None:
    utc = pa.array([datetime(2023, 1, 1)], pa.timestamp("us", tz="UTC"))
    import_file(store, "customer", _customers(tmp_path / "c.parquet", utc), as_of=AS_OF)


def test_a_bad_row_in_one_part_refuses_the_whole_folder_naming_part_and_row(store, tmp_path):
    _one_customer(store, tmp_path)
    folder = _orders_folder(tmp_path / "orders", bad_net_amount=-5.0)
    with pytest.raises(LoadRejectedError, match=r"orders/year=2024/part-0.parquet row 2 net_amo"):
        import_file(store, "orders", folder, as_of=AS_OF)
    assert _contents(store, "orders") == []
    report = pd.read_csv(tmp_path / "orders.rejects.csv", encoding="utf-8-sig")
    assert report[["file", "line", "column"]].values.tolist() == [
        ["orders/year=2024/part-0.parquet", 2, "net_amount"]
    ]


def test_a_folder_loads_every_part(store, tmp_path):
    _one_customer(store, tmp_path)
    folder = _orders_folder(tmp_path / "orders", bad_net_amount=10.0)
    (folder / "_SUCCESS").touch()  # Spark's marker is not a part
    result = import_file(store, "orders", folder, as_of=AS_OF)
    assert (result.rows_read, result.inserted) == (4, 4)
    assert [row[0] for row in _contents(store, "orders")] == ["o1", "o2", "o3", "o4"]


def test_a_key_repeated_across_parts_names_both_parts(duckdb_store, tmp_path):
    _one_customer(duckdb_store, tmp_path)
    folder = _orders_folder(tmp_path / "orders", bad_net_amount=10.0)
    pq.write_table(pq.read_table(folder / "year=2023" / "part-0.parquet"), folder / "part-1.pq")
    with pytest.raises(
        LoadRejectedError,
        match=r"in this folder \(orders/part-1.pq row 1 … orders/year=2023/part-0.parquet row 1\)",
    ):
        import_file(duckdb_store, "orders", folder, as_of=AS_OF)


def test_a_folder_without_parts_is_refused(duckdb_store, tmp_path):
    (tmp_path / "coupon").mkdir()
    with pytest.raises(
        ValidationError,
        match=r"coupon: it is a folder; .* holds no Parquet part file .* empty table",
    ):
        import_file(duckdb_store, "coupon", tmp_path / "coupon")


def test_a_part_with_an_unknown_column_is_named(duckdb_store, tmp_path):
    folder = _orders_folder(tmp_path / "orders", bad_net_amount=10.0)
    pq.write_table(pa.table({"order_id": ["o9"], "colour": ["red"]}), folder / "part-9.parquet")
    with pytest.raises(ValidationError, match=r"orders/part-9.parquet: unknown column\(s\)"):
        import_file(duckdb_store, "orders", folder, as_of=AS_OF)
