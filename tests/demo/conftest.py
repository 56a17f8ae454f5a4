"""A small generated store shared by the demo tests (DuckDB, 2,000 customers, 3 years)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from crm_ml.demo import SyntheticSummary, generate
from crm_ml.store import Store, init_store
from crm_ml.store.schema import SOURCE_TABLES

N_CUSTOMERS = 2_000
START, END = "2023-01-01", "2025-12-31"
SEED = 11


@dataclass
class Generated:
    store: Store
    summary: SyntheticSummary
    tables: dict[str, pd.DataFrame]


def read_tables(store: Store) -> dict[str, pd.DataFrame]:
    """Every source table, read back from the store (sorted by its key, for comparisons)."""
    from crm_ml.store.schema import Base

    tables = {}
    with store.connect() as conn:
        for name in SOURCE_TABLES:
            table = Base.metadata.tables[name]
            key = [c.name for c in table.primary_key.columns]
            frame = pd.read_sql_query(table.select(), conn)
            tables[name] = frame.sort_values(key, kind="stable").reset_index(drop=True)
    return tables


@pytest.fixture(scope="session")
def tables_of():
    """The function that reads every source table of a store."""
    return read_tables


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    folder: Path = tmp_path_factory.mktemp("demo")
    store = Store(f"duckdb:///{folder / 'demo.duckdb'}", create=True)
    init_store(store)
    summary = generate(store, n_customers=N_CUSTOMERS, start=START, end=END, seed=SEED)
    yield Generated(store, summary, read_tables(store))
    store.dispose()
