"""Creating a store, checking its schema version, and summarising what it holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Connection, func, insert, inspect, select

from crm_ml import __version__
from crm_ml.errors import SchemaVersionError
from crm_ml.store.connection import Store
from crm_ml.store.schema import SCHEMA_VERSION, Base, SchemaInfo


def utc_now() -> datetime:
    """Return the current time as naive UTC, the store's canonical form (audit columns only)."""
    return datetime.now(UTC).replace(tzinfo=None)


def init_store(store: Store) -> int:
    """Create every table that is missing and record the schema version.

    Safe to run again on an existing store of the same version.

    Returns
    -------
    int
        The store's schema version.
    """
    with store.begin() as conn:
        Base.metadata.create_all(conn)
        recorded = conn.execute(select(SchemaInfo.version)).scalars().all()
        if not recorded:
            conn.execute(
                insert(SchemaInfo).values(
                    version=SCHEMA_VERSION, created_at=utc_now(), crm_ml_version=__version__
                )
            )
            return SCHEMA_VERSION
    return _check_version(max(recorded))


def _check_version(version: int) -> int:
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"The store has schema version {version}, but this crm_ml expects {SCHEMA_VERSION}. "
            "Use the crm_ml release that created it, or re-create the store with `crm-ml init`."
        )
    return version


def check_store(conn: Connection) -> int:
    """Return the schema version, raising a clear error if the store was never initialised."""
    if not inspect(conn).has_table(SchemaInfo.__tablename__):
        raise SchemaVersionError(
            "The store has no crm_ml tables yet. Create them with `crm-ml init` "
            "(or `crm_ml.store.init_store(store)`)."
        )
    version = conn.execute(select(func.max(SchemaInfo.version))).scalar_one()
    return _check_version(int(version))


def table_counts(store: Store) -> pd.DataFrame:
    """Count the rows of every table.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``table``, with one column ``rows``.
    """
    with store.connect() as conn:
        check_store(conn)
        counts = {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
            if name != SchemaInfo.__tablename__
        }
    frame = pd.DataFrame({"rows": pd.Series(counts, dtype="int64")})
    frame.index.name = "table"
    return frame
