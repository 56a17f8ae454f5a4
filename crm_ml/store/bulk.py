"""Engine-native bulk writes and reads inside one SQLAlchemy transaction.

Measured on these machines for a million rows (notes/STACK.md): DuckDB
``INSERT … SELECT`` from a registered Arrow table 0.2–0.3 s; PostgreSQL ``COPY``
3 s; SQLite ``executemany`` 4 s — against 20–230 s for ``to_sql``. Every path
here goes through the driver connection *behind* the SQLAlchemy connection,
so it joins the caller's transaction: all of a load is applied, or none.

SQLite keeps timestamps as text and compares them as strings, so they are
written in the one form SQLAlchemy's ``DateTime`` writes,
``YYYY-MM-DD HH:MM:SS.ffffff``; then ``ts < cutoff`` compares correctly.
"""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Column, Connection, MetaData, Table
from sqlalchemy.exc import IntegrityError

from crm_ml.store.schema import Base
from crm_ml.store.sources import Progress, no_progress

#: SQLAlchemy's text form of a DateTime on SQLite.
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
BATCH_ROWS = 100_000

ARROW_TYPES = {
    "text": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.timestamp("us"),
}

Kinds = dict[str, str]


def to_arrow(frame: pd.DataFrame, kinds: Kinds) -> pa.Table:
    """Convert a frame of parsed columns to Arrow with the store's types."""
    schema = pa.schema([(name, ARROW_TYPES[kinds[name]]) for name in frame.columns])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _quote(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(name))


def _column_list(conn: Connection, names: Sequence[str]) -> str:
    return ", ".join(_quote(conn, n) for n in names)


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _insert_duckdb(conn: Connection, table: str, data: pa.Table, progress: Progress) -> None:
    # One statement, so nothing to tell until it returns: a million orders sent as 4 or 10
    # INSERTs took 1–2 s more CPU here (inserting and checkpointing) than as one.
    driver = _driver(conn)
    view = f"crm_arrow_{uuid.uuid4().hex[:12]}"
    columns = _column_list(conn, data.column_names)
    driver.register(view, data)
    try:
        driver.execute(
            f"INSERT INTO {_quote(conn, table)} ({columns}) SELECT {columns} FROM {view}"
        )
    finally:
        driver.unregister(view)


def _insert_postgresql(conn: Connection, table: str, data: pa.Table, progress: Progress) -> None:
    columns = _column_list(conn, data.column_names)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with _driver(conn).cursor() as cursor:
        sql = f"COPY {_quote(conn, table)} ({columns}) FROM STDIN (FORMAT csv)"
        with cursor.copy(sql) as copy:
            written = 0
            for batch in data.to_batches(max_chunksize=BATCH_ROWS):
                buffer = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buffer, options)
                copy.write(buffer.getvalue())
                written += batch.num_rows
                progress(table, written, data.num_rows)


def _sqlite_columns(batch: pa.RecordBatch) -> list[list[Any]]:
    columns = []
    for array in batch.columns:
        if pa.types.is_timestamp(array.type):
            array = pc.strftime(array, format=SQLITE_TIMESTAMP)  # %S carries the microseconds
        columns.append(array.to_pylist())
    return columns


def _insert_sqlite(conn: Connection, table: str, data: pa.Table, progress: Progress) -> None:
    columns = _column_list(conn, data.column_names)
    marks = ", ".join("?" * data.num_columns)
    sql = f"INSERT INTO {_quote(conn, table)} ({columns}) VALUES ({marks})"
    cursor = _driver(conn).cursor()
    try:
        written = 0
        for batch in data.to_batches(max_chunksize=BATCH_ROWS):
            cursor.executemany(sql, zip(*_sqlite_columns(batch), strict=True))
            written += batch.num_rows
            progress(table, written, data.num_rows)
    finally:
        cursor.close()


_INSERTERS = {
    "duckdb": _insert_duckdb,
    "postgresql": _insert_postgresql,
    "sqlite": _insert_sqlite,
}


#: What the drivers raise, behind SQLAlchemy, when a row breaks a key or constraint.
_DRIVER_INTEGRITY_ERRORS = (
    duckdb.ConstraintException,
    sqlite3.IntegrityError,
    psycopg.IntegrityError,
)


def insert_frame(
    conn: Connection,
    table: str,
    frame: pd.DataFrame,
    kinds: Kinds,
    *,
    progress: Progress = no_progress,
) -> int:
    """Append ``frame`` to ``table`` with the engine's fastest path; return the row count.

    PostgreSQL and SQLite write :data:`BATCH_ROWS` rows at a time and tell
    ``progress`` (table, rows written, rows in all) each batch; DuckDB writes
    all in one statement and tells nothing.

    Raises
    ------
    sqlalchemy.exc.IntegrityError
        If a row breaks a key or constraint, whatever the engine: these paths use
        the driver directly, so its error is raised as SQLAlchemy would raise it.
    """
    if frame.empty:
        return 0
    try:
        _INSERTERS[conn.dialect.name](conn, table, to_arrow(frame, kinds), progress)
    except _DRIVER_INTEGRITY_ERRORS as exc:
        raise IntegrityError(f"bulk insert into {table}", None, exc) from exc
    return len(frame)


def _stage_table(conn: Connection, table: str, columns: Sequence[str]) -> Table:
    target = Base.metadata.tables[table]
    return Table(
        f"crm_stage_{uuid.uuid4().hex[:12]}",
        MetaData(),
        *(Column(name, target.columns[name].type) for name in columns),
        prefixes=["TEMPORARY"],
    )


@contextmanager
def staged(conn: Connection, table: str, frame: pd.DataFrame, kinds: Kinds) -> Iterator[str]:
    """Make ``frame`` queryable by name inside the transaction; yield that name.

    DuckDB reads the Arrow table in place; PostgreSQL and SQLite get a
    temporary table typed like ``table``'s columns, filled natively.
    """
    data = to_arrow(frame, kinds)
    if conn.dialect.name == "duckdb":
        view = f"crm_stage_{uuid.uuid4().hex[:12]}"
        _driver(conn).register(view, data)
        try:
            yield view
        finally:
            _driver(conn).unregister(view)
        return
    stage = _stage_table(conn, table, list(frame.columns))
    stage.create(conn)
    try:
        _INSERTERS[conn.dialect.name](conn, stage.name, data, no_progress)
        yield stage.name
    finally:
        stage.drop(conn)


_BOOLEANS = {"t": True, "true": True, "1": True, "f": False, "false": False, "0": False}


def _coerce_column(values: pd.Series, kind: str) -> pd.Series:
    textual = values.dtype == "str" or values.dtype == object
    if kind in ("timestamp", "date"):
        if textual:
            values = pd.to_datetime(values, format="ISO8601")
        return values.astype("datetime64[us]")
    if kind == "text":
        return values.astype("str")
    if kind == "bool":
        if textual:
            values = values.map(lambda v: v if v is None else _BOOLEANS.get(str(v).lower(), v))
        return values.astype("boolean")
    numbers = pd.to_numeric(values)
    return numbers.astype("Int64" if kind == "int" else "float64")


def coerce(frame: pd.DataFrame, kinds: Kinds) -> pd.DataFrame:
    """Give stored values the dtypes the loader parses into.

    Drivers differ: SQLite returns timestamps as text and booleans as 0/1.
    """
    out = {name: _coerce_column(frame[name], kinds[name]) for name in frame.columns}
    return pd.DataFrame(out, index=frame.index)


def _fetch_rows(conn: Connection, sql: str, kinds: Kinds) -> pd.DataFrame:
    # Plain driver tuples (pandas probing SQLAlchemy Row objects costs ~10 s per million
    # rows), typed a batch at a time so that Python objects never hold the whole result.
    cursor = _driver(conn).cursor()
    try:
        cursor.execute(sql)
        names = [d[0] for d in cursor.description]
        parts = []
        while rows := cursor.fetchmany(BATCH_ROWS):
            parts.append(coerce(pd.DataFrame(rows, columns=names, dtype=object), kinds))
    finally:
        cursor.close()
    if not parts:
        return coerce(pd.DataFrame({n: pd.Series(dtype=object) for n in names}), kinds)
    return pd.concat(parts, ignore_index=True)


def fetch(conn: Connection, sql: str, kinds: Kinds) -> pd.DataFrame:
    """Run ``sql`` and return its rows typed as the loader parses them (see :func:`coerce`)."""
    if conn.dialect.name == "duckdb":
        result = _driver(conn).execute(sql)
        reader = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
        return coerce(reader().to_pandas(), kinds)
    return _fetch_rows(conn, sql, kinds)


def join_condition(conn: Connection, left: str, right: str, columns: Sequence[str]) -> str:
    """``left.a = right.a AND …`` for the given columns."""
    return " AND ".join(f"{left}.{_quote(conn, c)} = {right}.{_quote(conn, c)}" for c in columns)


def select_matching(
    conn: Connection, table: str, stage: str, on: Sequence[str], kinds: Kinds
) -> pd.DataFrame:
    """Rows of ``table`` whose ``on`` columns match a staged row, with the columns of ``kinds``.

    The staged rows must be distinct and ``on`` unique in ``table`` (a key), so that
    each stored row comes back once.
    """
    wanted = ", ".join(f"t.{_quote(conn, c)}" for c in kinds)
    sql = (
        f"SELECT {wanted} FROM {_quote(conn, table)} t "
        f"JOIN {stage} s ON {join_condition(conn, 't', 's', on)}"
    )
    return fetch(conn, sql, kinds)


def update_from(
    conn: Connection, table: str, frame: pd.DataFrame, kinds: Kinds, key: Sequence[str]
) -> int:
    """Set every non-key column of ``frame`` on the rows of ``table`` with the same key."""
    if frame.empty:
        return 0
    changed = [c for c in frame.columns if c not in key]
    with staged(conn, table, frame, kinds) as stage:
        assignments = ", ".join(f"{_quote(conn, c)} = s.{_quote(conn, c)}" for c in changed)
        conn.exec_driver_sql(
            f"UPDATE {_quote(conn, table)} AS t SET {assignments} FROM {stage} AS s "
            f"WHERE {join_condition(conn, 't', 's', key)}"
        )
    return len(frame)


def has_rows(conn: Connection, table: str) -> bool:
    """Whether ``table`` holds any row (cheap: reads at most one)."""
    return conn.exec_driver_sql(f"SELECT 1 FROM {_quote(conn, table)} LIMIT 1").first() is not None
