"""Export the store's tables to Parquet, partitioned for Spark and other engines.

Each table becomes a folder ``DIR/<table>/``. Event tables that grow without
bound are partitioned by year of their event time (a ``year=2025/`` folder per
year, which Spark, DuckDB and PyArrow read as a column). Column types follow
the schema exactly, so every reader sees the same types: text ids, timestamps in
microseconds marked as UTC, doubles for money.

Timestamps carry their zone (``timestamp[us, tz=UTC]``, Parquet's
``isAdjustedToUTC``) although the store keeps them naive: a naive Parquet
timestamp says nothing about its zone, so ``crm-ml import`` would read it in
``--timezone`` and shift every instant by the zone's offset. Marked as UTC, an
export loads back unchanged, and Spark reads it as the same wall-clock UTC.

``crm-ml import TABLE DIR/<table>`` loads a table folder back (every part file
at once), the merge log (``customer_merge``), profile history
(``customer_change``) and erasure marks (``erased_customer``) included, so a
store moved through Parquet keeps them.

A table is written to a temporary folder and renamed into place only when it
is complete, so a reader never sees half a table.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from sqlalchemy import Boolean, DateTime, Double, Integer, Table, select

from crm_ml.errors import ConfigError, NotFoundError
from crm_ml.outputs import cannot_write, check_output_folder
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.schema import SOURCE_TABLES, Base

log = logging.getLogger(__name__)

#: Event time used to partition each large table by year.
PARTITION_TIME = {
    "orders": "ordered_at",
    "behavior_event": "occurred_at",
    "points_ledger": "posted_at",
    "stored_value_ledger": "posted_at",
    "coupon": "issued_at",
}

_BATCH_ROWS = 250_000

#: What an export holds: the source tables, plus the merge map and profile changes
#: that point-in-time features read (merged ids, profile values as of a date), and the
#: erasure marks that keep erased customers out of scores, tags and later imports.
EXPORT_TABLES = (*SOURCE_TABLES, "customer_merge", "customer_change", "erased_customer")


def arrow_schema(table: Table) -> pa.Schema:
    """Return the Arrow schema matching a store table's declared column types.

    Timestamps are UTC-aware: the store's naive values are UTC, and saying so
    keeps an importer from reading them in a local zone.
    """
    fields = []
    for column in table.columns:
        if isinstance(column.type, DateTime):
            arrow_type = pa.timestamp("us", tz="UTC")
        elif isinstance(column.type, Double):
            arrow_type = pa.float64()
        elif isinstance(column.type, Boolean):
            arrow_type = pa.bool_()
        elif isinstance(column.type, Integer):
            arrow_type = pa.int64()
        else:
            arrow_type = pa.string()
        fields.append(pa.field(column.name, arrow_type, nullable=column.nullable))
    return pa.schema(fields)


def _batches(store: Store, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Stream a table as Arrow batches of at most ``_BATCH_ROWS`` rows (bounded memory)."""
    names = [c.name for c in table.columns]
    with store.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=_BATCH_ROWS).execute(
            select(table)
        )
        for rows in result.partitions():
            frame = pd.DataFrame.from_records(rows, columns=names)
            yield pa.RecordBatch.from_pandas(frame, schema=schema, preserve_index=False)


def _with_year(batches: Iterable[pa.RecordBatch], column: str) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        years = pa.compute.year(batch.column(column)).cast(pa.int32())
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, years], names=[*batch.schema.names, "year"]
        )


def export_table(store: Store, name: str, out_dir: Path) -> int:
    """Write one table to ``out_dir/<name>/``; return the number of rows written."""
    table = Base.metadata.tables.get(name)
    if table is None:
        raise NotFoundError(f"No table {name!r} in the store; expected one of {SOURCE_TABLES}.")
    schema = arrow_schema(table)
    batches: Iterable[pa.RecordBatch] = _batches(store, table, schema)
    partitioning = None
    time_column = PARTITION_TIME.get(name)
    if time_column:
        schema = schema.append(pa.field("year", pa.int32()))
        batches = _with_year(batches, time_column)
        partitioning = ds.partitioning(pa.schema([("year", pa.int32())]), flavor="hive")
    staging = out_dir / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    rows = 0

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in batches:
            rows += batch.num_rows
            yield batch

    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, counted()),
        staging,
        format="parquet",
        partitioning=partitioning,
        existing_data_behavior="error",
        basename_template="part-{i}.parquet",
    )
    staging.mkdir(exist_ok=True)  # an empty table still gets its folder
    _swap_in(staging, out_dir / name)
    return rows


def _swap_in(staging: Path, final: Path) -> None:
    """Move ``staging`` to ``final``; a previous export stays until the new one is in place."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        final.rename(old)
    try:
        staging.rename(final)
    except OSError:
        if old.exists():
            old.rename(final)
        raise
    if old.exists():
        shutil.rmtree(old)


def _check_export_folder(out_dir: Path, names: list[str]) -> None:
    """Refuse, before any work, a folder that is a file or holds a file named like a table."""
    check_output_folder(out_dir, what="the Parquet export")
    for name in names:
        if (out_dir / name).exists() and not (out_dir / name).is_dir():
            raise ConfigError(
                f"Cannot export table {name} to {out_dir / name}: it is a file, but the export "
                "writes a folder there. Choose another folder, or move the file away."
            )


def export_parquet(
    store: Store, out_dir: Path, *, tables: Iterable[str] = EXPORT_TABLES, progress: bool = False
) -> pd.DataFrame:
    """Export store tables to partitioned Parquet under ``out_dir``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``table``, with columns ``rows`` and ``path``.

    Raises
    ------
    ConfigError
        If ``out_dir`` (or a parent) is a file, or holds a file named like a
        table; nothing is written. A table exported before is replaced.
    """
    from tqdm.auto import tqdm

    out_dir, names = Path(out_dir), list(tables)
    _check_export_folder(out_dir, names)
    with store.connect() as conn:
        check_store(conn)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(out_dir, "the Parquet export", exc) from exc
    records = []
    for name in tqdm(names, desc="export parquet", unit="table", disable=not progress):
        rows = export_table(store, name, out_dir)
        records.append({"table": name, "rows": rows, "path": str(out_dir / name)})
        log.info("Exported %s rows of %s", rows, name)
    return pd.DataFrame.from_records(records).set_index("table")
