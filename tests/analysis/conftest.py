"""Fixtures for the analysis tests: insert tiny hand-written rows with SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crm_ml.store import Store
from crm_ml.store.schema import Base

Insert = Callable[[str, list[dict[str, Any]]], None]


@pytest.fixture
def insert(store: Store) -> Insert:
    """Insert rows into a table of the parametrised store."""

    def _insert(table: str, rows: list[dict[str, Any]]) -> None:
        with store.begin() as conn:
            conn.execute(Base.metadata.tables[table].insert(), rows)

    return _insert
