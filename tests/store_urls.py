"""Where test stores live: a file per test for DuckDB and SQLite, a database per test on PostgreSQL.

Kept out of ``conftest.py`` so tests can import it by a name no other module has.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from crm_ml.store import Store, init_store

POSTGRES_URL = os.environ.get("CRM_ML_TEST_POSTGRES_URL")

_db_counter = itertools.count()


def _postgres_database(name: str, template: str = "template0") -> str:
    """Create a fresh database on the test server, a copy of ``template``, and return its URL."""
    assert POSTGRES_URL
    admin = create_engine(POSTGRES_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE "{template}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(name: str) -> None:
    assert POSTGRES_URL
    admin = create_engine(POSTGRES_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_store_url(
    engine: str, tmp_path: Path, template: str | None = None
) -> tuple[str, str | None]:
    """Return a URL for a new store on ``engine`` and the PostgreSQL database to drop.

    The store is empty, or a copy of ``template``: a store's file, or its database.
    """
    if engine == "postgresql":
        name = f"crm_test_{os.getpid()}_{next(_db_counter)}"
        return _postgres_database(name, template=template or "template0"), name
    path = tmp_path / ("crm.duckdb" if engine == "duckdb" else "crm.db")
    if template:
        shutil.copyfile(template, path)
    return f"{engine}:///{path}", None


class EmptyStores:
    """Initialised empty stores, made once per engine and test process and copied for each test.

    ``init_store`` creates some forty tables: about 0.1 s on DuckDB and 0.2 s on
    PostgreSQL, which every test of every engine paid. Copying the file, or
    ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, gives the same store for less.
    ``tests/store/test_admin.py`` tests ``init_store`` itself.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._templates: dict[str, str] = {}  # engine -> the template's file or database

    def new(self, engine: str, tmp_path: Path) -> tuple[str, str | None]:
        """Return the URL of a new, initialised store on ``engine``, and the database to drop."""
        template = self._templates.get(engine) or self._make_template(engine)
        return make_store_url(engine, tmp_path, template=template)

    def _make_template(self, engine: str) -> str:
        if engine == "postgresql":
            template = f"crm_template_{os.getpid()}"
            url = _postgres_database(template)
        else:
            url, _ = make_store_url(engine, self._folder)
            template = str(make_url(url).database)
        store = Store(url, create=True)
        init_store(store)
        store.dispose()  # a template database must have no connections; DuckDB checkpoints
        self._templates[engine] = template
        return template

    def drop(self) -> None:
        """Drop the PostgreSQL template, if one was made (the files go with their folder)."""
        if "postgresql" in self._templates:
            drop_postgres_database(self._templates["postgresql"])
