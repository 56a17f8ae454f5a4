"""Spark: spark_tables checks each table's stored columns before registering any.

An export or catalog table that lacks a column, or holds one in a type Spark
cannot read as declared, is refused with every problem named; compatible
types (narrower integers, instants, DECIMAL money) are read as declared. CI
(``CRM_ML_FORBID_SKIPS=1``) fails these tests when pyspark or Java is missing;
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from features.rows import insert_rows
from features.sample import sample_tables

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.store import Store, init_store

pytestmark = pytest.mark.spark


Change = Callable[[pa.Table], pa.Table]


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Parquet export of the hand-written sample store."""
    from crm_ml.spark import export_tables

    store = Store(f"duckdb:///{tmp_path_factory.mktemp('store') / 'crm.duckdb'}", create=True)
    init_store(store)
    insert_rows(store, sample_tables())
    folder = tmp_path_factory.mktemp("export")
    export_tables(store, folder)
    store.dispose()
    yield folder


@pytest.fixture
def export(parquet_dir: Path, tmp_path: Path) -> Path:
    """A copy of the export, for a test to damage."""
    return Path(shutil.copytree(parquet_dir, tmp_path / "export"))


def _rewrite(folder: Path, name: str, change: Change) -> None:
    """Rewrite every Parquet file of table ``name`` under ``folder`` with ``change``."""
    files = sorted((folder / name).rglob("*.parquet"))
    assert files, f"the sample store has no {name} rows to damage"
    for file in files:
        pq.write_table(change(pq.read_table(file)), file)


def _without(column: str) -> Change:
    return lambda table: table.drop_columns([column])


def _as_type(column: str, arrow_type: pa.DataType) -> Change:
    def change(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(column)
        return table.set_column(index, column, table.column(column).cast(arrow_type, safe=False))

    return change


def _types(spark: Any, view: str) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in spark.table(view).schema.fields}


def _declared_types(name: str) -> dict[str, str]:
    from crm_ml.spark import table_schema

    return {f.name: f.dataType.simpleString() for f in table_schema(name).fields}


def _refusal(spark: Any, **where: Any) -> str:
    from crm_ml.spark import spark_tables

    with pytest.raises(ValidationError) as caught:
        spark_tables(spark, **where)
    return str(caught.value)


def test_intact_export_registers_every_table_with_its_declared_types(
    spark: Any, parquet_dir: Path
) -> None:
    from crm_ml.spark import spark_tables
    from crm_ml.spark.session import SESSION_TABLES

    spark_tables(spark, parquet_dir)
    for name in SESSION_TABLES:
        assert _types(spark, name) == _declared_types(name)
    assert spark.table("orders").count() == pq.read_table(parquet_dir / "orders").num_rows


def test_empty_table_folder_is_accepted_and_gives_no_rows(spark: Any, export: Path) -> None:
    from crm_ml.spark import spark_tables

    shutil.rmtree(export / "orders")
    (export / "orders").mkdir()  # how the export writes a table without rows
    spark_tables(spark, export)
    assert spark.table("orders").count() == 0
    assert _types(spark, "orders") == _declared_types("orders")


def test_export_lacking_a_column_is_refused_naming_table_column_and_remedy(
    spark: Any, export: Path
) -> None:
    _rewrite(export, "order_item", _without("refund_amount"))
    message = _refusal(spark, parquet_dir=export)
    assert f"order_item ({export}/order_item)" in message
    assert "column refund_amount is missing (expected double)" in message
    assert "crm-ml upgrade" in message
    assert f"crm_ml.spark.export_tables(store, {str(export)!r})" in message


@pytest.mark.parametrize(
    ("table", "column", "stored", "found", "expected"),
    [
        ("orders", "gross_amount", pa.int64(), "bigint", "double"),
        ("orders", "net_amount", pa.float32(), "float", "double"),  # would change the money
        ("order_item", "refunded_at", pa.date32(), "date", "timestamp_ntz"),
        ("order_item", "line_no", pa.string(), "string", "bigint"),
    ],
)
def test_column_of_an_unreadable_type_is_refused_with_found_and_expected_type(
    spark: Any,
    export: Path,
    table: str,
    column: str,
    stored: pa.DataType,
    found: str,
    expected: str,
) -> None:
    _rewrite(export, table, _as_type(column, stored))
    message = _refusal(spark, parquet_dir=export)
    assert f"{table} ({export}/{table}): column {column} is {found}, expected {expected}" in message


def test_every_bad_table_is_named_at_once_and_none_is_registered(spark: Any, export: Path) -> None:
    from crm_ml.spark.session import SESSION_TABLES

    _rewrite(export, "order_item", _without("refund_amount"))
    _rewrite(export, "orders", _as_type("gross_amount", pa.int64()))
    _rewrite(export, "orders", _as_type("net_amount", pa.int64()))
    for name in SESSION_TABLES:
        spark.catalog.dropTempView(name)
    message = _refusal(spark, parquet_dir=export)
    assert message.startswith("2 store table(s)")
    assert "gross_amount is bigint" in message and "net_amount is bigint" in message
    assert "refund_amount is missing" in message
    assert not [name for name in SESSION_TABLES if spark.catalog.tableExists(name)]


def _rows(spark: Any, parquet_dir: Path, name: str, columns: list[str]) -> tuple[list, list]:
    """The view's rows and the intact export's, sorted, in ``columns``."""
    got = spark.table(name).select(*columns).toPandas().sort_values(columns)
    exported = pq.read_table(parquet_dir / name, columns=columns).to_pandas().sort_values(columns)
    return got.values.tolist(), exported.values.tolist()


def test_narrower_integers_and_decimal_money_are_read_as_declared(
    spark: Any, export: Path, parquet_dir: Path
) -> None:
    from crm_ml.spark import spark_tables

    _rewrite(export, "order_item", _as_type("quantity", pa.int32()))
    _rewrite(export, "order_item", _as_type("line_no", pa.int16()))
    _rewrite(export, "orders", _as_type("net_amount", pa.decimal128(18, 2)))
    spark_tables(spark, export)
    assert _types(spark, "orders") == _declared_types("orders")
    assert _types(spark, "order_item") == _declared_types("order_item")
    got, exported = _rows(spark, parquet_dir, "orders", ["order_id", "net_amount"])
    assert got == exported
    got, exported = _rows(spark, parquet_dir, "order_item", ["order_id", "line_no", "quantity"])
    assert got == exported


def test_missing_table_folder_keeps_its_message(spark: Any, export: Path) -> None:
    from crm_ml.spark import spark_tables

    shutil.rmtree(export / "customer_change")
    with pytest.raises(
        NotFoundError, match=r"No exported table 'customer_change' at .*export_tables"
    ):
        spark_tables(spark, export)


# ----------------------------------------------------------------------------- catalog


@pytest.fixture
def catalog(spark: Any, parquet_dir: Path) -> Callable[..., str]:
    """Put the export in the session's ``global_temp`` database, changed as a test asks."""
    from crm_ml.spark import spark_tables
    from crm_ml.spark.session import SESSION_TABLES

    def make(changes: dict[str, Callable[[Any], Any]] | None = None) -> str:
        spark_tables(spark, parquet_dir)
        for name in SESSION_TABLES:
            spark.catalog.dropGlobalTempView(name)
            frame = spark.table(name)
            if name in (changes or {}):
                frame = (changes or {})[name](frame)
            if frame is not None:
                frame.createOrReplaceGlobalTempView(name)
        return "global_temp"

    return make


def test_catalog_decimal_money_timestamp_and_int_columns_are_accepted(
    spark: Any, catalog: Callable[..., str]
) -> None:
    from pyspark.sql import functions as F

    from crm_ml.spark import spark_tables

    def lake_types(frame: Any) -> Any:
        return frame.withColumns(
            {
                "gross_amount": F.col("gross_amount").cast("decimal(18,2)"),
                "net_amount": F.col("net_amount").cast("decimal(18,2)"),
                "ordered_at": F.col("ordered_at").cast("timestamp"),
            }
        )

    expected = spark.table("orders").select("order_id", "net_amount").toPandas()
    database = catalog(
        {
            "orders": lake_types,
            "order_item": lambda f: f.withColumn("quantity", F.col("quantity").cast("int")),
        }
    )
    spark_tables(spark, database=database)
    types = _types(spark, "orders")
    assert types["gross_amount"] == types["net_amount"] == "double"
    assert types["ordered_at"] == "timestamp"  # an instant, read in the UTC session time zone
    assert _types(spark, "order_item")["quantity"] == "bigint"
    got = spark.table("orders").select("order_id", "net_amount").toPandas()
    assert got.sort_values("order_id").values.tolist() == (
        expected.sort_values("order_id").values.tolist()
    )


def test_catalog_table_lacking_a_column_is_refused(spark: Any, catalog: Callable[..., str]) -> None:
    database = catalog({"order_item": lambda frame: frame.drop("refund_amount")})
    message = _refusal(spark, database=database)
    assert "order_item (global_temp.order_item): column refund_amount is missing" in message
    assert "crm_ml.spark.table_schema(name)" in message


def test_catalog_without_a_table_says_to_create_it_or_leave_it_out(
    spark: Any, catalog: Callable[..., str]
) -> None:
    from crm_ml.spark import spark_tables

    database = catalog({"erased_customer": lambda frame: None})
    with pytest.raises(NotFoundError, match=r"No table global_temp\.erased_customer .*tables="):
        spark_tables(spark, database=database)
