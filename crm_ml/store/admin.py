"""Creating a store, checking its schema version, and summarising what it holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Connection, func, insert, inspect, select

from crm_ml import __version__
from crm_ml.errors import SchemaVersionError
from crm_ml.store.connection import Store
from crm_ml.store.schema import SCHEMA_VERSION, Base, Customer, SchemaInfo


def utc_now() -> datetime:
    """Return the current time as naive UTC, the store's canonical form (audit columns only)."""
    return datetime.now(UTC).replace(tzinfo=None)


def init_store(store: Store) -> int:
    """Create every table that is missing and record the schema version.

    Safe to run again on an existing store of the same version. A store of
    another version is refused before anything is created in it.

    Returns
    -------
    int
        The store's schema version.
    """
    with store.begin() as conn:
        has_info = inspect(conn).has_table(SchemaInfo.__tablename__)
        recorded = conn.execute(select(SchemaInfo.version)).scalars().all() if has_info else []
        if recorded:
            _check_version(max(recorded))
        Base.metadata.create_all(conn)
        if not recorded:
            conn.execute(
                insert(SchemaInfo).values(
                    version=SCHEMA_VERSION, created_at=utc_now(), crm_ml_version=__version__
                )
            )
    return SCHEMA_VERSION


def _check_version(version: int) -> int:
    if version < SCHEMA_VERSION:
        raise SchemaVersionError(
            f"The store has schema version {version}, made by an earlier crm_ml; this one uses "
            f"{SCHEMA_VERSION}. Upgrade it with `crm-ml upgrade` "
            "(or `crm_ml.store.upgrade_store(store)`); back up the store first."
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"The store has schema version {version}, newer than this crm_ml's "
            f"{SCHEMA_VERSION} (crm_ml {__version__}). Upgrade crm_ml to use it."
        )
    return version


def store_version(conn: Connection) -> int:
    """Return the store's schema version (the highest it has recorded), unchecked.

    Raises
    ------
    SchemaVersionError
        If the store has no crm_ml tables.
    """
    if not inspect(conn).has_table(SchemaInfo.__tablename__):
        raise SchemaVersionError(
            "The store has no crm_ml tables yet. Create them with `crm-ml init` "
            "(or `crm_ml.store.init_store(store)`)."
        )
    return int(conn.execute(select(func.max(SchemaInfo.version))).scalar_one())


def check_store(conn: Connection) -> int:
    """Return the schema version, raising a clear error unless it is this release's.

    Raises
    ------
    SchemaVersionError
        If the store was never initialised, or has another schema version (saying
        whether to upgrade the store or crm_ml).
    """
    return _check_version(store_version(conn))


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


#: Ids per ``IN (…)`` query: bounded, so a long list of ids never makes one huge statement.
_ID_CHUNK = 500


def unknown_customers(conn: Connection, ids: Sequence[str]) -> list[str]:
    """Return the ids of ``ids`` that name no customer of the store (merged ones count)."""
    known: set[str] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = list(ids[start : start + _ID_CHUNK])
        query = select(Customer.customer_id).where(Customer.customer_id.in_(chunk))
        known |= {str(c) for c in conn.execute(query).scalars()}
    return [c for c in ids if c not in known]
