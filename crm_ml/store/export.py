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
is complete, so a reader never sees half a table. The export as a whole is
marked complete by ``DIR/_manifest.json``, written last (crm_ml and schema
versions, export time, store URL without its password, rows per table): a
re-export deletes it before changing any table, so an export killed part-way,
which leaves tables from two moments side by side, has none, and ``crm-ml
import`` warns when it reads a table of such a folder (:func:`export_problem`).

An export holds every customer's unmasked personal data, so it is readable by
its owner only, as an unmasked list is: files 0600, table folders (and the
export folder, when the export creates it) 0700. Each table is private from
the moment its staging folder is made. The manifest says who exported and why,
the store records the same in ``store_export`` (kept when the folder is
deleted), and a warning with the number of customers is logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from sqlalchemy import Boolean, DateTime, Double, Integer, Table, insert, select

from crm_ml import __version__
from crm_ml.errors import ConfigError, NotFoundError
from crm_ml.outputs import (
    PRIVATE_FILE,
    PRIVATE_FOLDER,
    cannot_write,
    check_output_file,
    check_output_folder,
    remove_old_leftovers,
    staged_file,
)
from crm_ml.processes import login_name
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store, shown_url
from crm_ml.store.schema import SOURCE_TABLES, Base, StoreExport

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

#: Written last, so that its presence says the export beside it is complete.
MANIFEST = "_manifest.json"
#: A table folder being written (``tmp``) or set aside (``old``) by :func:`export_table`.
_LEFTOVER = re.compile(r"^\.(?P<table>.+)\.(?P<kind>tmp|old)-[0-9a-f]{8}$")


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
    # Private before any row is in it: what pyarrow creates inside cannot be reached by others.
    staging.mkdir(mode=PRIVATE_FOLDER)
    rows = 0

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in batches:
            rows += batch.num_rows
            yield batch

    try:
        ds.write_dataset(
            pa.RecordBatchReader.from_batches(schema, counted()),
            staging,
            format="parquet",
            partitioning=partitioning,
            existing_data_behavior="error",
            basename_template="part-{i}.parquet",
        )
        _make_private(staging)
        _swap_in(staging, out_dir / name)
    except BaseException:
        # Half a table, possibly personal data: not left behind when the export fails.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return rows


def _make_private(folder: Path) -> None:
    """Make ``folder``, its subfolders and files readable by their owner only."""
    for parent, folders, files in os.walk(folder):
        os.chmod(parent, PRIVATE_FOLDER)
        for name in files:
            os.chmod(os.path.join(parent, name), PRIVATE_FILE)
        for name in folders:
            os.chmod(os.path.join(parent, name), PRIVATE_FOLDER)


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
    check_output_file(out_dir / MANIFEST, what="the export manifest")
    for name in names:
        if (out_dir / name).exists() and not (out_dir / name).is_dir():
            raise ConfigError(
                f"Cannot export table {name} to {out_dir / name}: it is a file, but the export "
                "writes a folder there. Choose another folder, or move the file away."
            )


def export_leftovers(out_dir: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Return the hidden table folders killed exports left in ``out_dir`` (of ``names`` only).

    ``.orders.tmp-1a2b3c4d`` is a table being written, ``.orders.old-1a2b3c4d``
    the previous export's table being replaced; a finished export leaves neither.
    """
    wanted = None if names is None else set(names)
    found = []
    for entry in sorted(out_dir.iterdir()) if out_dir.is_dir() else ():
        named = _LEFTOVER.match(entry.name)
        if named and entry.is_dir() and (wanted is None or named["table"] in wanted):
            found.append(entry)
    return found


def _remove_leftovers(out_dir: Path, names: list[str]) -> None:
    """Delete what killed exports of ``names`` left in ``out_dir``: it may be personal data."""
    leftovers = export_leftovers(out_dir, names)
    if leftovers:
        log.warning(
            "Removing what an export killed part-way left in %s: %s",
            out_dir,
            ", ".join(p.name for p in leftovers),
        )
    for path in leftovers:
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise cannot_write(path, "the Parquet export", exc) from exc
    remove_old_leftovers(out_dir, suffix=MANIFEST)  # a killed manifest write's temp file


def _prepare_folder(out_dir: Path, names: list[str]) -> None:
    """Create ``out_dir``, unmark it as complete, and clear killed exports' leftovers."""
    try:
        # A folder the export creates is private; an existing one (maybe shared) keeps its mode.
        out_dir.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        # Before any table changes: an export killed from here on leaves no manifest.
        (out_dir / MANIFEST).unlink(missing_ok=True)
    except OSError as exc:
        raise cannot_write(out_dir, "the Parquet export", exc) from exc
    _remove_leftovers(out_dir, names)


def _utc_iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _manifest(
    store: Store,
    schema_version: int,
    started: datetime,
    records: list[dict[str, Any]],
    *,
    actor: str = "",
    reason: str | None = None,
) -> dict[str, Any]:
    """Return what the manifest holds: who exported, why, from which store, when, its tables."""
    return {
        "actor": actor,
        "reason": reason,
        "crm_ml_version": __version__,
        "schema_version": schema_version,
        # Tables are read one after another, not in one snapshot: both ends are kept.
        "started_at": _utc_iso(started),
        "finished_at": _utc_iso(datetime.now(UTC)),
        "store": shown_url(store.url),
        "tables": {r["table"]: {"rows": r["rows"]} for r in records},
    }


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    with staged_file(out_dir / MANIFEST, what="the export manifest", private=True) as temp:
        temp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """Return the manifest of the export in ``out_dir``, or None if it has none.

    Raises
    ------
    ValueError
        If the manifest is not JSON (``json.JSONDecodeError``) or not an object.
    OSError
        If it cannot be read (no permission).
    """
    try:
        text = (out_dir / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    manifest = json.loads(text)
    if not isinstance(manifest, dict):
        raise ValueError(f"expected a JSON object, found {type(manifest).__name__}")
    return manifest


def _listed_rows(manifest: dict[str, Any], table: str) -> int | None:
    """Rows the manifest gives for ``table``; None if it does not list it (or was edited)."""
    tables = manifest.get("tables")
    entry = tables.get(table) if isinstance(tables, dict) else None
    rows = entry.get("rows") if isinstance(entry, dict) else None
    return rows if isinstance(rows, int) else None


def export_problem(folder: Path, rows: int) -> str | None:
    """Say why table folder ``folder`` (``rows`` read) may not belong with its export, or None.

    Only a folder that clearly is part of a crm_ml export is judged: its parent
    holds a manifest, or leftovers of a killed export. A folder made by hand,
    in a parent with neither, gives None.
    """
    out_dir, table = folder.parent, folder.name
    advice = (
        f"the export in {out_dir} is incomplete or mixed (killed part-way, or changed since), "
        "so its tables may be from different moments. Export the store again into it "
        "before importing."
    )
    try:
        manifest = read_manifest(out_dir)
    except (OSError, ValueError) as exc:
        return f"{out_dir / MANIFEST} cannot be read ({exc}): {advice}"
    if manifest is None:
        leftovers = export_leftovers(out_dir)
        if not leftovers:
            return None
        found = ", ".join(p.name for p in leftovers)
        return f"{out_dir} has no {MANIFEST} but leftovers of a killed export ({found}): {advice}"
    listed = _listed_rows(manifest, table)
    if listed is None:
        return f"{out_dir / MANIFEST} does not list {table}: {advice}"
    if listed != rows:
        return (
            f"{out_dir / MANIFEST} says {table} was exported with {listed:,} rows, but "
            f"{folder} holds {rows:,}: {advice}"
        )
    return None


def _record_export(
    store: Store,
    out_dir: Path,
    started: datetime,
    records: list[dict[str, Any]],
    *,
    actor: str,
    reason: str | None,
) -> None:
    """Record the export in ``store_export``, before its manifest says it is complete.

    The store keeps the record when the folder (and its manifest) is deleted or
    moved: an erasure names the exports made before it (:mod:`crm_ml.erasure`).
    """
    with store.begin() as conn:
        conn.execute(
            insert(StoreExport).values(
                export_id=uuid.uuid4().hex,
                exported_at=started.astimezone(UTC).replace(tzinfo=None),
                actor=actor,
                reason=reason,
                folder=os.path.abspath(out_dir),
                tables=",".join(r["table"] for r in records),
                customers=_customer_rows(records),
            )
        )


def _customer_rows(records: list[dict[str, Any]]) -> int | None:
    """How many customers an export holds: the rows of its ``customer`` table, if exported."""
    return {r["table"]: r["rows"] for r in records}.get("customer")


def _warn_unmasked(out_dir: Path, records: list[dict[str, Any]], actor: str) -> None:
    """Log that ``out_dir`` holds full personal data, as an unmasked list export does."""
    customers = _customer_rows(records)
    whose = f"of {customers:,} customers" if customers is not None else "of customers"
    log.warning(
        "%s exported the store to %s: it holds unmasked personal data %s (names, phones, "
        "emails, birth dates, consent). Its files are readable by the owner only (mode 600); "
        "keep them so, and delete the folder when it is no longer needed.",
        actor,
        out_dir,
        whose,
    )


def export_parquet(
    store: Store,
    out_dir: Path,
    *,
    tables: Iterable[str] = EXPORT_TABLES,
    actor: str | None = None,
    reason: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Export store tables to partitioned Parquet under ``out_dir``, with a manifest.

    The export holds unmasked personal data: its files are written with mode
    0600 and its table folders 0700 (``out_dir`` too when the export creates
    it), the manifest records ``actor`` and ``reason``, and a warning naming
    the folder and the number of customers is logged.

    ``out_dir/_manifest.json`` is deleted before any table is written and
    written last (atomically), so it is there only when every table of this
    export is. Hidden ``.<table>.tmp-*`` / ``.<table>.old-*`` folders of the
    exported tables, left by a killed export, are removed first, whatever
    their age: two exports into one folder at once are not supported.

    Parameters
    ----------
    actor : str, optional
        Who exports, kept in the manifest; by default the login name
        (:func:`crm_ml.processes.login_name`).
    reason : str, optional
        Why, kept in the manifest.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``table``, with columns ``rows`` and ``path``.

    Raises
    ------
    ConfigError
        If ``out_dir`` (or a parent) is a file, or holds a file named like a
        table or a folder named like the manifest; nothing is written. A table
        exported before is replaced.
    """
    from tqdm.auto import tqdm

    out_dir, names = Path(out_dir), list(tables)
    _check_export_folder(out_dir, names)
    with store.connect() as conn:
        schema_version = check_store(conn)
    started = datetime.now(UTC)
    _prepare_folder(out_dir, names)
    records = []
    for name in tqdm(names, desc="export parquet", unit="table", disable=not progress):
        rows = export_table(store, name, out_dir)
        records.append({"table": name, "rows": rows, "path": str(out_dir / name)})
        log.info("Exported %s rows of %s", rows, name)
    actor = actor.strip() if actor and actor.strip() else login_name()
    reason = reason.strip() if reason and reason.strip() else None
    manifest = _manifest(store, schema_version, started, records, actor=actor, reason=reason)
    _record_export(store, out_dir, started, records, actor=actor, reason=reason)
    _write_manifest(out_dir, manifest)
    _warn_unmasked(out_dir, records, actor)
    return pd.DataFrame.from_records(records).set_index("table")
