"""Ibis on the store's engine, and the few portable primitives every feature uses.

The rules of ``notes/ENGINES.md`` live here, once:

- window bounds are computed in Python and bound as timestamps; filters
  compare raw timestamp columns with ``>=`` and ``<`` only;
- one date-difference primitive, :meth:`Snapshot.days_before`: whole epoch
  seconds, differenced, cast to float64, divided by 86,400;
- a count's predicate (``t.count(where=p)``) is never NULL: Ibis compiles it
  on Spark as ``SUM(CAST(p AS BIGINT))``, NULL rather than 0 when every ``p``
  is NULL; guard nullable columns with ``.notnull() & ...``;
- results arrive as Arrow and are cast to the declared types by the caller
  (DuckDB's integer sums arrive as decimal128, PostgreSQL's as numeric).

Features and labels read a :data:`TableSource`: a :class:`Store`, or an open
Ibis connection on which the store's tables are registered under their own
names (e.g. Spark over exported Parquet, see :mod:`crm_ml.spark`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from sqlalchemy import make_url

from crm_ml.errors import ConfigError, StoreError
from crm_ml.features.spec import FeatureWindows
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1)
SECONDS_PER_DAY = 86_400.0

#: Where features and labels read the store's tables: a :class:`Store`, or an
#: Ibis backend (``ibis.BaseBackend``) holding tables named as in the store.
TableSource: TypeAlias = Store | Any

#: The store tables that features and labels read (what an Ibis source must hold).
FEATURE_TABLES = (
    "customer",
    "customer_merge",
    "customer_change",
    "customer_owner",
    "consent",
    "product",
    "orders",
    "order_item",
    "behavior_event",
    "tier",
    "tier_change",
    "points_ledger",
    "coupon",
    "stored_value_ledger",
    "campaign_contact",
)


@ibis.udf.scalar.builtin(name="strftime")
def _sqlite_strftime(fmt: str, value: str) -> str:  # type: ignore[empty-body]
    """SQLite's own ``strftime`` (the body is never run)."""


@ibis.udf.scalar.builtin(name="substr")
def _sqlite_substr(value: str, start: int, length: int) -> str:  # type: ignore[empty-body]
    """SQLite's own ``substr`` (the body is never run)."""


@ibis.udf.scalar.builtin(name="regexp_replace")
def _spark_regexp_replace(value: str, pattern: str, replacement: str) -> str:  # type: ignore[empty-body]
    """Spark's own ``regexp_replace`` (the body is never run)."""


def _postgres_kwargs(url: str) -> dict[str, Any]:
    """Return psycopg connection arguments from a URL; query options such as sslmode pass on."""
    parsed = make_url(url)
    options = {k: v for k, v in parsed.query.items() if isinstance(v, str)}
    kwargs: dict[str, Any] = {
        **options,
        "host": parsed.host or options.get("host"),
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }
    if parsed.port:
        kwargs["port"] = parsed.port
    return kwargs


def _plan_for_every_row(con: Any) -> None:
    """Have PostgreSQL plan Ibis's cursor queries for fetching every row, as they do.

    Ibis reads results through a server-side cursor, which PostgreSQL plans for the
    first 10 % of rows (``cursor_tuple_fraction``). For the browsing-since-last-order
    join that picks a nested loop: 261 s instead of 2 s at 50,000 customers.
    """
    with con.begin() as cursor:
        cursor.execute("SET cursor_tuple_fraction = 1")


@contextmanager
def ibis_backend(store: Store) -> Iterator[Any]:
    """Yield an Ibis connection to the store, open only for the length of the block.

    DuckDB shares the SQLAlchemy connection (a second connection to the same
    file from one process is refused); SQLite and PostgreSQL get their own
    Ibis connection from the store's URL.

    Raises
    ------
    StoreError
        If the store cannot be opened.
    """
    if store.dialect == "duckdb":
        with store.connect() as conn:
            yield ibis.duckdb.from_connection(conn.connection.driver_connection)
        return
    if store.dialect == "sqlite":
        with store.connect():  # refuses a missing file, which Ibis's own connect would create
            pass
    try:
        if store.dialect == "sqlite":
            con = ibis.sqlite.connect(make_url(store.url).database)
        else:
            con = ibis.postgres.connect(**_postgres_kwargs(store.url))
            _plan_for_every_row(con)
    except Exception as exc:  # drivers raise many types; wrapped once here
        raise StoreError(f"Cannot open {store!r} with Ibis: {exc}") from exc
    try:
        yield con
    finally:
        con.disconnect()


@contextmanager
def open_tables(source: TableSource) -> Iterator[tuple[Any, str]]:
    """Yield ``(ibis connection, dialect)`` for a store or an already open Ibis backend.

    A :class:`Store` is opened for the block (see :func:`ibis_backend`); an
    Ibis backend belongs to the caller and stays open. Its dialect is the
    backend's name (``pyspark``, ``duckdb``...).

    Raises
    ------
    ConfigError
        If ``source`` is neither a Store nor an Ibis backend.
    """
    if isinstance(source, Store):
        with ibis_backend(source) as con:
            yield con, source.dialect
        return
    name = getattr(source, "name", None)
    if not isinstance(name, str) or not callable(getattr(source, "table", None)):
        raise ConfigError(
            f"Cannot read the store's tables from {type(source).__name__}: expected a Store or "
            "an Ibis backend holding them (e.g. crm_ml.spark.spark_tables(session, folder))."
        )
    yield source, name


def epoch_seconds(dialect: str, value: ir.TimestampValue) -> ir.IntegerValue:
    """Whole seconds since 1970 of a timestamp expression, identical on every engine.

    SQLite rounds ``strftime('%s', ...)`` to milliseconds first (so
    ``23:59:59.999999`` would become the next day); cutting the stored text to
    whole seconds makes it truncate like ``floor`` on DuckDB and PostgreSQL.
    """
    if dialect == "sqlite":
        return _sqlite_strftime("%s", _sqlite_substr(value.cast("string"), 1, 19)).cast("int64")
    return value.epoch_seconds().floor().cast("int64")


def strip_text(dialect: str, value: ir.StringValue) -> ir.StringValue:
    """``value`` without leading and trailing whitespace, identical on every engine.

    Ibis writes Spark's ``TRIM`` with escaped characters (space, tab, newline,
    CR, VT, FF), and Spark reads the VT and FF escapes as the letters v and f:
    "female" became "emale". On Spark a regular expression over Java's
    whitespace class (the same six characters) is used instead.
    """
    if dialect == "pyspark":
        return _spark_regexp_replace(value, r"^\s+|\s+$", "")
    return value.strip()


def python_epoch_seconds(value: datetime) -> int:
    """Whole seconds since 1970 of a naive UTC datetime (floor, like :func:`epoch_seconds`)."""
    return (value - _EPOCH) // timedelta(seconds=1)


@contextmanager
def temporary_table(con: Any, expr: ir.Table, prefix: str) -> Iterator[ir.Table]:
    """Materialise ``expr`` as a temporary table for the block, then drop it.

    Queries that reuse it stay shallow (SQLite's parser has a nesting limit)
    and cheap. Spark has no temporary tables: there the expression is cached
    (a temporary view, computed once on first use, released after the block).
    Where neither works (a read-only PostgreSQL replica), the expression itself
    is yielded and each query recomputes it.
    """
    if getattr(con, "name", None) == "pyspark":
        with _cached(expr, prefix) as table:
            yield table
        return
    name = f"_crm_{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        table = con.create_table(name, expr, temp=True)
    except Exception as exc:  # any refusal falls back to the plain expression
        log.info("No temporary table %s (%s); using the expression", prefix, exc)
        yield expr
        return
    try:
        yield table
    finally:
        con.drop_table(name, force=True)


@contextmanager
def _cached(expr: ir.Table, prefix: str) -> Iterator[ir.Table]:
    try:
        table = expr.cache()
    except Exception as exc:  # any refusal falls back to the plain expression
        log.info("Cannot cache %s (%s); using the expression", prefix, exc)
        yield expr
        return
    try:
        yield table
    finally:
        table.release()


def fetch(expr: ir.Table) -> pd.DataFrame:
    """Execute ``expr`` and return it as pandas, decimals turned into float64 or int64.

    Returns
    -------
    pandas.DataFrame
        The expression's columns, default index.
    """
    table = expr.to_pyarrow()
    fields = []
    for item in table.schema:
        kind = item.type
        if pa.types.is_decimal(kind):
            kind = pa.int64() if kind.scale == 0 else pa.float64()
        fields.append(pa.field(item.name, kind))
    return table.cast(pa.schema(fields)).to_pandas()


@dataclass
class Snapshot:
    """The store seen from ``as_of``: tables with merged ids resolved, and window bounds.

    Parameters
    ----------
    con : ibis backend
        An open Ibis connection (see :func:`ibis_backend`).
    dialect : str
        ``duckdb``, ``sqlite`` or ``postgresql``.
    as_of : datetime
        Naive UTC cut-off: features see rows strictly before it.
    windows : FeatureWindows
        Look-back windows.
    id_map : ibis Table or None
        ``merged_id -> surviving_id`` with chains resolved, or None when nothing was merged.
    people : ibis Table or None
        The population, numbered, while a build holds it (see ``features.align``).
    """

    con: Any
    dialect: str
    as_of: datetime
    windows: FeatureWindows = field(default_factory=FeatureWindows)
    id_map: ir.Table | None = None
    people: ir.Table | None = None
    _cache: dict[str, ir.Table] = field(default_factory=dict, repr=False)

    def raw(self, name: str) -> ir.Table:
        """Return the table as stored."""
        if name not in self._cache:
            self._cache[name] = self.con.table(name)
        return self._cache[name]

    def table(self, name: str) -> ir.Table:
        """Return the table with ``customer_id`` replaced by the surviving customer's id.

        A merged customer's history follows the survivor whether or not it was re-keyed.
        """
        table = self.raw(name)
        if self.id_map is None:
            return table
        joined = table.left_join(self.id_map, table.customer_id == self.id_map.merged_id)
        remapped = joined.mutate(customer_id=ibis.coalesce(joined.surviving_id, joined.customer_id))
        return remapped.drop("merged_id", "surviving_id")

    def bound(self, days: float) -> datetime:
        """``as_of`` minus ``days`` (plus for negative days), computed in Python."""
        return self.as_of - timedelta(days=days)

    def epoch(self, value: ir.TimestampValue) -> ir.IntegerValue:
        """Whole epoch seconds of a timestamp expression (see :func:`epoch_seconds`)."""
        return epoch_seconds(self.dialect, value)

    def strip(self, value: ir.StringValue) -> ir.StringValue:
        """``value`` without surrounding whitespace (see :func:`strip_text`)."""
        return strip_text(self.dialect, value)

    def days_before(self, value: ir.TimestampValue) -> ir.FloatingValue:
        """Days from ``value`` to ``as_of``: the one date-difference primitive."""
        as_of = python_epoch_seconds(self.as_of)
        return (ibis.literal(as_of, type="int64") - self.epoch(value)).cast(
            "float64"
        ) / SECONDS_PER_DAY

    def days_between(
        self, later: ir.TimestampValue, earlier: ir.TimestampValue
    ) -> ir.FloatingValue:
        """Days from ``earlier`` to ``later``, with the same primitive as :meth:`days_before`."""
        return (self.epoch(later) - self.epoch(earlier)).cast("float64") / SECONDS_PER_DAY
