"""Where test stores live: a file per test for DuckDB and SQLite, a database per test on PostgreSQL.

Kept out of ``conftest.py`` so tests can import it by a name no other module has.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

POSTGRES_URL = os.environ.get("CRM_ML_TEST_POSTGRES_URL")

_db_counter = itertools.count()


def _postgres_database(name: str) -> str:
    """Create a fresh database on the test server and return its URL."""
    assert POSTGRES_URL
    admin = create_engine(POSTGRES_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(name: str) -> None:
    assert POSTGRES_URL
    admin = create_engine(POSTGRES_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_store_url(engine: str, tmp_path: Path) -> tuple[str, str | None]:
    """Return a URL for an empty store on ``engine`` and the PostgreSQL database to drop."""
    if engine == "duckdb":
        return f"duckdb:///{tmp_path / 'crm.duckdb'}", None
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}", None
    name = f"crm_test_{os.getpid()}_{next(_db_counter)}"
    return _postgres_database(name), name
