"""Importing source tables from CSV, Parquet or a DataFrame into the store.

A load reads the source safely (:mod:`~crm_ml.store.sources`), checks every row
(:mod:`~crm_ml.store.checks`), then, inside one transaction, checks what needs
the store (:mod:`~crm_ml.store.reconcile`) and applies the accepted rows with
the engine's native bulk path (:mod:`~crm_ml.store.bulk`). Every problem becomes
a row of a reject report naming file, line and column. When more rows are
rejected than ``max_reject_rate`` allows, nothing at all is written.

Loading the same file twice changes nothing: existing rows are compared, not
re-inserted. Each load is recorded in ``load_batch``.

A customer erased on request stays erased: the rows of an erased id that would
put back what the erasure removed (a customer file's profile, identities,
custom field values, consent grants) are skipped, not rejected, with a warning
naming the file, its lines and the ids (:mod:`~crm_ml.store.erased`). Their
orders, points, events and other rows load as for anyone.

A folder of Parquet part files (a table folder of ``crm-ml export parquet``,
``year=2024/part-0.parquet`` and so on) loads as one source: every part is
checked before anything is written, and the reject report names the part file
and its row.

Besides the source tables, a store's merge log (``customer_merge``), profile
history (``customer_change``) and erasure marks (``erased_customer``) load from
its export, after ``customer``, so that a store moved through Parquet keeps
them. All are append-only: a row given again as stored changes nothing, a
changed one is refused. Their rules:

- ``customer_merge``: both customers exist and differ, the merged one is
  ``status='merged'``, and the log agrees with ``customer.merged_into`` without
  cycles (:mod:`crm_ml.store.merge_log`). Nothing is re-keyed: the export holds
  the merged records' history under their survivors already.
- ``customer_change``: the customer exists (a merged one too), ``change_id`` is
  the key, and ``field`` names a column of ``customer`` other than its id.
  Changes are loaded as recorded; none is applied to the customer, whose
  exported row already holds the values after them.
- ``erased_customer``: the customer and the erasure's audit row
  (``customer_change.change_id``) exist, so it loads after ``customer_change``.
  The exported customer is already anonymised; the mark keeps it out of scores,
  tags and later imports.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy import Connection, insert
from sqlalchemy.exc import DBAPIError

from crm_ml.errors import LoadRejectedError, StoreError, ValidationError
from crm_ml.outputs import check_output_folder
from crm_ml.store._timestamps import as_store_time
from crm_ml.store.admin import check_store, utc_now
from crm_ml.store.bulk import insert_frame, update_from
from crm_ml.store.checks import Checked, header_check, validate_source
from crm_ml.store.connection import Store
from crm_ml.store.erased import erased_rows, skipped_warning
from crm_ml.store.import_bar import ImportBar
from crm_ml.store.merge_log import check_merge_log
from crm_ml.store.owner_names import check_owner_names
from crm_ml.store.owner_overlaps import check_owner_overlaps
from crm_ml.store.reconcile import (
    Plan,
    check_custom_values,
    check_references,
    check_unique,
    kinds_of,
    plan_load,
)
from crm_ml.store.rejects import PartsRejectLog, RejectLog, rejection_message, write_report
from crm_ml.store.schema import LoadBatch
from crm_ml.store.sources import (
    Progress,
    Source,
    check_file,
    frame_source,
    part_files,
    read_parts_source,
    read_source,
)
from crm_ml.store.validation import TableSpec, table_spec

log = logging.getLogger(__name__)

CHANGE_KINDS = {
    "change_id": "text",
    "customer_id": "text",
    "field": "text",
    "old_value": "text",
    "new_value": "text",
    "changed_at": "timestamp",
    "actor": "text",
}


@dataclass(frozen=True)
class LoadResult:
    """What one import did.

    Attributes
    ----------
    table, source : str
        Target table and the file (or DataFrame name) read.
    rows_read : int
        Data records in the source.
    inserted, updated, unchanged, rejected : int
        Rows added, changed in place (dimension tables), already present as
        given, and refused.
    warnings : tuple of str
        Problems that did not reject a row (e.g. unrecognised consent answers), and
        rows skipped as an erased customer's (counted in none of the other numbers).
    batch_id : str
        Key of this load's ``load_batch`` row.
    reject_report : Path or None
        The reject report, when any row was rejected.
    """

    table: str
    source: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    warnings: tuple[str, ...]
    batch_id: str
    reject_report: Path | None

    def summary(self) -> str:
        """One line for the CLI, plus the warnings and the report path."""
        text = (
            f"{self.table} ← {self.source}: {self.rows_read:,} read, {self.inserted:,} inserted, "
            f"{self.updated:,} updated, {self.unchanged:,} unchanged, {self.rejected:,} rejected"
        )
        lines = [text, *(f"  warning: {w}" for w in self.warnings)]
        if self.reject_report:
            lines.append(f"  rejects: {self.reject_report}")
        return "\n".join(lines)


def _check_options(timezone: str, max_reject_rate: float) -> None:
    if not 0.0 <= max_reject_rate <= 1.0:
        raise ValidationError(
            f"max_reject_rate={max_reject_rate!r} is not a share of rows: expected a number "
            "from 0 (refuse any bad row, the default) to 1 (load whatever is valid)."
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"Unknown time zone {timezone!r}: expected an IANA name such as 'Asia/Shanghai'."
        ) from exc


def _as_of(as_of: datetime | str | None) -> pd.Timestamp:
    """Return the load's ``as_of`` as naive UTC: by default the load time; naive input is UTC."""
    return pd.Timestamp(utc_now() if as_of is None else as_store_time(as_of, name="as_of"))


def import_file(
    store: Store,
    table: str,
    path: str | Path,
    *,
    timezone: str = "Asia/Shanghai",
    encoding: str | None = None,
    as_of: datetime | str | None = None,
    max_reject_rate: float = 0.0,
    reject_dir: str | Path | None = None,
    progress: bool = False,
) -> LoadResult:
    """Import a CSV or Parquet file into table ``table``.

    Parameters
    ----------
    store : Store
        The store to load into; it must have been initialised.
    table : str
        One of :data:`crm_ml.store.validation.IMPORT_TABLES`: a source table, or
        ``customer_merge`` / ``customer_change`` / ``erased_customer`` from a store's
        export (after ``customer``; ``erased_customer`` after ``customer_change``).
    path : str or Path
        A ``.csv`` (every value read as text) or ``.parquet`` file, or a folder
        of Parquet part files (such as ``DIR/orders`` written by ``crm-ml export
        parquet``, with its ``year=`` folders), checked and loaded as one source.
    timezone : str
        IANA zone of timestamps written without an offset or zone; they are stored
        as naive UTC. A Parquet timestamp column with a zone (as the export
        writes) is an absolute instant and ignores ``timezone``.
    encoding : str, optional
        ``'utf-8'`` or ``'gbk'``; by default UTF-8 with or without a BOM.
    as_of : datetime or str, optional
        Timestamps after it are rejected (naive values are UTC); by default the load time.
    max_reject_rate : float
        Share of rows that may be rejected while the rest still loads; above it
        nothing is written. The default 0 refuses a file with any bad row.
    reject_dir : str or Path, optional
        Folder of the reject report; by default the folder holding the source
        file (or the source folder: the report never lands among the parts).
    progress : bool
        Show a progress bar over reading, validating, checking against the store,
        writing and committing; it is full only once the commit has returned.

    Returns
    -------
    LoadResult

    Raises
    ------
    ValidationError
        When the file cannot be read as a table (encoding, empty, header-only,
        missing, unknown or duplicated columns), or when a folder holds no Parquet
        part file or a part is unreadable; nothing is written.
    LoadRejectedError
        When more rows than ``max_reject_rate`` allows break rules; nothing is written.
    """
    spec = table_spec(table)
    _check_options(timezone, max_reject_rate)
    path = Path(path)
    folder = check_output_folder(Path(reject_dir or path.parent), what="the reject folder")
    report = folder / f"{path.stem if path.is_file() else path.name}.rejects.csv"
    options = _Options(timezone, _as_of(as_of), max_reject_rate, report)
    _check_path(path)
    with ImportBar(spec.name, store.dialect, enabled=progress) as bar:
        bar.start("reading", path.name)
        source, rejects = _read_file(spec, path, encoding, bar.advance)
        result = _load(store, spec, source, str(path), options, bar, rejects)
    _log_result(source, result)
    return result


def import_frame(
    store: Store,
    table: str,
    frame: pd.DataFrame,
    *,
    source: str = "<DataFrame>",
    timezone: str = "Asia/Shanghai",
    as_of: datetime | str | None = None,
    max_reject_rate: float = 0.0,
    reject_dir: str | Path | None = None,
    progress: bool = False,
) -> LoadResult:
    """Import a DataFrame into table ``table``; see :func:`import_file`.

    Text columns are parsed as in a CSV; typed columns (numbers, datetimes) are
    used as they are, naive datetimes read in ``timezone``. Reject lines are row
    numbers counted from 1 (``frame.iloc[row - 1]``); the report goes to ``reject_dir`` or the
    working directory.
    """
    spec = table_spec(table)
    _check_options(timezone, max_reject_rate)
    folder = check_output_folder(Path(reject_dir or Path.cwd()), what="the reject folder")
    report = folder / f"{table}.rejects.csv"
    options = _Options(timezone, _as_of(as_of), max_reject_rate, report)
    with ImportBar(spec.name, store.dialect, enabled=progress) as bar:
        bar.start("reading", source)
        read = frame_source(frame, source, check_header=header_check(spec, f"{source} columns"))
        result = _load(store, spec, read, source, options, bar)
    _log_result(read, result)
    return result


def _check_path(path: Path) -> None:
    """Refuse a path that names no file or part files, before the bar is drawn.

    At a terminal the error is then the command's first line, as for any other.
    """
    if path.is_dir():
        part_files(path)
    else:
        check_file(path)


def _read_file(
    spec: TableSpec, path: Path, encoding: str | None, progress: Progress
) -> tuple[Source, RejectLog | None]:
    """Read a file, or a folder of Parquet parts with the reject log that names them."""
    if path.is_dir():
        source, parts = read_parts_source(
            path, lambda label: header_check(spec, label), progress=progress
        )
        return source, PartsRejectLog(source, parts)
    check = header_check(spec, f"{path.name}:1")
    return read_source(path, encoding=encoding, check_header=check, progress=progress), None


def log_bad_records(source: Source, rejects: RejectLog, width: int) -> None:
    """Reject the file's rows with fewer or more fields than its ``width`` columns, with a hint."""
    for kind, records in (
        ("short", [r for r in source.bad_records if r.width < width]),
        ("long", [r for r in source.bad_records if r.width > width]),
    ):
        hint = (
            "a missing value or separator?" if kind == "short" else "an unquoted comma in a value?"
        )
        for record in records:
            rejects.add_lines(
                [record.line],
                "",
                "row_width",
                [record.text],
                f"{kind} row: {record.width} fields where the header has {width} ({hint})",
            )


@dataclass(frozen=True)
class _Options:
    timezone: str
    as_of: pd.Timestamp
    max_reject_rate: float
    report: Path


def _plan(
    conn: Connection,
    spec: TableSpec,
    source: Source,
    checked: Checked,
    rejects: RejectLog,
    *,
    batch_id: str,
    timezone: str,
) -> tuple[Plan, pd.Timestamp]:
    """Run the checks that need the store and decide what to write, inside the transaction."""
    check_store(conn)
    check_references(conn, spec, checked.clean, rejects)
    check_custom_values(conn, spec, checked.clean, rejects)
    check_merge_log(conn, spec, checked.clean, rejects)
    check_unique(conn, spec, checked.clean, rejects)
    if spec.name == "customer_owner":
        raw = source.frame["valid_from"]  # reject reports show the value as the file gave it
        check_owner_overlaps(conn, spec, checked.clean, rejects, raw=raw, timezone=timezone)
        names = _given(source, checked, "owner_name")
        checked.warnings.extend(check_owner_names(conn, checked.clean, rejects, raw=names))
    # Last, so that a bad row of an erased customer still fails the import like any other.
    skip = erased_rows(conn, spec.name, checked.clean, rejects)
    if skip.any():
        checked.warnings.append(skipped_warning(spec.name, checked.clean, skip, rejects))
    loaded_at = pd.Timestamp(utc_now())
    plan = plan_load(
        conn, spec, checked.clean, checked.present, rejects,
        batch_id=batch_id, loaded_at=loaded_at, timezone=timezone, skip=skip,
    )  # fmt: skip
    return plan, loaded_at


def _given(source: Source, checked: Checked, column: str) -> pd.Series:
    """Return the column as the file gave it (as parsed when left out), for reject reports."""
    return source.frame[column] if column in source.frame else checked.clean[column]


def _load(
    store: Store,
    spec: TableSpec,
    source: Source,
    label: str,
    options: _Options,
    bar: ImportBar,
    rejects: RejectLog | None = None,
) -> LoadResult:
    batch_id = uuid.uuid4().hex
    if rejects is None:
        rejects = RejectLog(source.name, source.lines, unit=source.unit)
    log_bad_records(source, rejects, len(source.frame.columns))
    bar.start("validating", f"{source.rows_read:,} rows")
    checked = validate_source(
        source, spec, rejects, timezone=options.timezone, as_of=options.as_of, progress=bar.advance
    )
    with store.begin() as conn:
        bar.start("checking the store")
        plan, loaded_at = _plan(
            conn, spec, source, checked, rejects, batch_id=batch_id, timezone=options.timezone
        )
        written = _report(rejects, options.report)
        _refuse_if_too_many(spec, source, rejects, options.max_reject_rate, written)
        result = LoadResult(
            spec.name, label, source.rows_read, len(plan.inserts), len(plan.updates),
            plan.unchanged, rejects.count, tuple(checked.warnings), batch_id, written,
        )  # fmt: skip
        bar.start("writing", f"{len(plan.inserts) + len(plan.updates):,} rows")
        _apply(conn, spec, plan, result, source.sha256, loaded_at, progress=bar.advance)
        bar.start("committing")
    bar.finish()
    return result


def _log_result(source: Source, result: LoadResult) -> None:
    """Log the load's warnings and summary once its bar is closed: under a bar, a line joins it."""
    for warning in result.warnings:
        log.warning("%s: %s", source.name, warning)
    log.info("%s", result.summary().splitlines()[0])  # its warnings were logged just above


def _report(rejects: RejectLog, path: Path) -> Path | None:
    if not rejects.count:
        return None
    return write_report(rejects.frame(), path)


def _refuse_if_too_many(
    spec: TableSpec, source: Source, rejects: RejectLog, max_reject_rate: float, report: Path | None
) -> None:
    if rejects.count and rejects.count > max_reject_rate * source.rows_read:
        frame = rejects.frame()
        message = rejection_message(
            spec.name, source.name, frame, rejects.count, source.rows_read, max_reject_rate, report
        )
        raise LoadRejectedError(message, rejects=frame, report_path=report)


def _is_database_error(exc: Exception) -> bool:
    # The native paths raise the driver's own errors, not SQLAlchemy's wrappers.
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, DBAPIError) or module in ("psycopg", "duckdb", "_duckdb", "sqlite3")


def _apply(
    conn: Connection,
    spec: TableSpec,
    plan: Plan,
    result: LoadResult,
    sha256: str | None,
    loaded_at: pd.Timestamp,
    *,
    progress: Progress,
) -> None:
    kinds = kinds_of(spec)
    try:
        insert_frame(conn, spec.name, plan.inserts, kinds, progress=progress)
        update_from(conn, spec.name, plan.updates, kinds, spec.key)
        insert_frame(conn, "customer_change", plan.changes, CHANGE_KINDS)
        conn.execute(
            insert(LoadBatch).values(
                batch_id=result.batch_id,
                table_name=spec.name,
                source=result.source,
                sha256=sha256,
                loaded_at=loaded_at.to_pydatetime(),
                rows_read=result.rows_read,
                rows_inserted=result.inserted,
                rows_updated=result.updated,
                rows_unchanged=result.unchanged,
                rows_rejected=result.rejected,
            )
        )
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        raise StoreError(
            f"Writing {result.rows_read} rows of {result.source} into {spec.name} failed: "
            f"{getattr(exc, 'orig', exc)}. Nothing was written (the load is one transaction); "
            "fix the cause and import again."
        ) from exc
