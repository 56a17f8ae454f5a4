"""Connections to the store, held only for the length of one operation.

A DuckDB file open in one process cannot be opened by another at all, so a
JupyterLab kernel that kept the store open would break the nightly report run.
Every operation therefore opens a connection, does its work and closes it;
when the file is locked, it waits and retries, then names the holder.

DuckDB and SQLite create a missing file when they connect, so a mistyped path
would give an empty store; a file store is only created when asked for.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from crm_ml.errors import ConfigError, StoreError, StoreLockedError, StoreNotFoundError
from crm_ml.outputs import PRIVATE_FOLDER

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.1
_LOCK_PATTERN = re.compile(r"Could not set lock on file|database is locked", re.IGNORECASE)
_HOLDER_PATTERN = re.compile(r"Conflicting lock is held in (\S+)(?: \(PID (\d+)\))?")

SUPPORTED_DIALECTS = ("duckdb", "sqlite", "postgresql")


def shown_url(url: str) -> str:
    """Return a database URL as logs, manifests and MLflow may show it: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _roll_back(conn: Connection, transaction: Any) -> None:
    """Roll back after a failure; if the connection is already lost, keep the failure's error.

    A server restart or a full disk fails the write, and then the rollback on the
    dead connection fails too: its error would replace the one that says what
    happened. The server has dropped the transaction anyway.
    """
    try:
        transaction.rollback()
    except DBAPIError:
        conn.invalidate()


def _is_lock_error(exc: BaseException) -> bool:
    return bool(_LOCK_PATTERN.search(str(exc)))


def _lock_holder(exc: BaseException) -> str:
    match = _HOLDER_PATTERN.search(str(exc))
    if not match:
        return "another process"
    program, pid = match.group(1), match.group(2)
    return f"{program} (PID {pid})" if pid else program


def _sqlite_immediate_transactions(engine: Engine) -> None:
    # pysqlite starts a read transaction lazily; a read that later writes then fails
    # with "database is locked" without waiting. Writers take the lock up front.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _duckdb_without_progress_bar(engine: Engine) -> None:
    # In Jupyter, DuckDB draws its own progress widget on slow queries; in a published
    # report it is a stray, half-drawn bar. crm_ml shows its own progress where it matters.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET enable_progress_bar = false")


def _refuse_missing_file(engine: Engine, path: Path) -> None:
    # Checked on every connect rather than once: one stat is nothing next to opening
    # the store, and a file deleted or moved since the last operation is caught too.
    @event.listens_for(engine, "do_connect")
    def _do_connect(*_args: Any) -> None:
        if not path.exists():
            raise StoreNotFoundError(
                f"No store exists at {path.absolute()}: create one with `crm-ml init`, or with "
                "Store(url, create=True) in Python, and if the URL came from settings, check "
                "CRM_ML_DATABASE_URL for a typo."
            )


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except Exception as exc:
        raise ConfigError(f"Cannot read database URL {url!r}: {exc}") from exc


def _local_file(parsed: URL) -> Path | None:
    if parsed.get_backend_name() not in ("duckdb", "sqlite"):
        return None
    return None if parsed.database in (None, "", ":memory:") else Path(str(parsed.database))


def store_file(url: str) -> Path | None:
    """Return the file behind a DuckDB or SQLite URL; None for a server or in-memory store.

    Raises
    ------
    ConfigError
        If ``url`` cannot be read as a database URL.
    """
    return _local_file(_parse(url))


def make_engine(url: str, *, create: bool = False) -> Engine:
    """Create an engine for a store URL; connecting is deferred to first use.

    Parameters
    ----------
    url : str
        The store's SQLAlchemy URL.
    create : bool
        Let a connection create a missing DuckDB or SQLite file (and its folder,
        made here, mode 700). Otherwise connecting to a missing file raises
        :class:`~crm_ml.errors.StoreNotFoundError` and creates nothing.

    Raises
    ------
    ConfigError
        If the URL names an engine crm_ml does not support.
    """
    parsed = _parse(url)
    dialect = parsed.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise ConfigError(
            f"Unsupported database {dialect!r} in {url!r}; expected one of "
            f"{', '.join(SUPPORTED_DIALECTS)} (e.g. duckdb:///data/crm.duckdb)."
        )
    if dialect == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    path = _local_file(parsed)
    if path is not None and create and not path.parent.exists():
        # The store holds every customer's personal data: a folder made for it is the
        # owner's only (an existing one keeps its mode).
        path.parent.mkdir(parents=True, mode=PRIVATE_FOLDER)
    # NullPool: closing a connection really closes it, releasing DuckDB's file lock.
    engine = create_engine(parsed, poolclass=NullPool)
    if path is not None and not create:
        _refuse_missing_file(engine, path)
    if dialect == "sqlite":
        _sqlite_immediate_transactions(engine)
    if dialect == "duckdb":
        _duckdb_without_progress_bar(engine)
    return engine


class Store:
    """The customer/loyalty store behind a SQLAlchemy URL.

    Creating a ``Store`` does not connect. Use :meth:`begin` for a unit of work
    (committed on success, rolled back on error) or :meth:`connect` to read;
    both close the connection when the block ends.

    Parameters
    ----------
    url : str
        ``duckdb:///path.duckdb``, ``sqlite:///path.db`` or ``postgresql+psycopg://...``.
    create : bool
        Create the DuckDB or SQLite file (and its folder) on first connect if it
        does not exist, for a new store (then :func:`~crm_ml.store.init_store`).
        By default a missing file is refused, so a mistyped path cannot leave an
        empty store behind. Server and ``:memory:`` URLs are not affected.
    lock_timeout : float
        Seconds to keep retrying while another process holds a DuckDB file.

    Raises
    ------
    StoreNotFoundError
        On connecting, if the file does not exist and ``create`` is false; no
        file or folder is created.

    Examples
    --------
    >>> store = Store("duckdb:///data/crm.duckdb")                 # doctest: +SKIP
    >>> new = Store("duckdb:///data/new.duckdb", create=True)      # doctest: +SKIP
    """

    def __init__(self, url: str, *, create: bool = False, lock_timeout: float = 30.0) -> None:
        self.url = url
        self.create = create
        self.lock_timeout = lock_timeout
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Store({shown_url(self.url)!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use)."""
        if self._engine is None:
            self._engine = make_engine(self.url, create=self.create)
        return self._engine

    @property
    def dialect(self) -> str:
        """``duckdb``, ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield a connection for reading; it is closed when the block ends."""
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """Yield a connection inside one transaction: all of it is applied, or none."""
        conn = self._open()
        try:
            transaction = conn.begin()
            try:
                yield conn
            except BaseException:
                _roll_back(conn, transaction)
                raise
            transaction.commit()
        finally:
            conn.close()

    def dispose(self) -> None:
        """Close every pooled connection (call in teardown)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _open(self) -> Connection:
        deadline = time.monotonic() + self.lock_timeout
        delay = FIRST_RETRY_S
        while True:
            try:
                return self.engine.connect()
            except (OperationalError, DBAPIError) as exc:
                if not _is_lock_error(exc):
                    raise StoreError(f"Cannot open the store {self!r}: {exc.orig}") from exc
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"The store {self!r} is held by {_lock_holder(exc)} and stayed locked for "
                        f"{self.lock_timeout:.0f} s. Close that program (e.g. shut down the "
                        "notebook kernel that has it open) and try again."
                    ) from exc
                # Said once, so a wait of up to lock_timeout is not silent; the retries are detail.
                say = log.warning if delay == FIRST_RETRY_S else log.info
                say(
                    "The store is held by %s; waiting up to %.0f s for it.",
                    _lock_holder(exc),
                    self.lock_timeout,
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
