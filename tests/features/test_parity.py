"""The same data on DuckDB, SQLite and PostgreSQL gives the same frame."""

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from store_urls import POSTGRES_URL, drop_postgres_database, make_store_url

from crm_ml.features import customer_features
from crm_ml.store import Store, init_store

from .reference import reference_features
from .rows import insert_rows
from .sample import AS_OF, random_tables

ENGINES = ["duckdb", "sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, Store]]:
    """One store per available engine, all holding the same random data."""
    made, databases = {}, []
    for engine in ENGINES:
        folder = tmp_path / engine
        folder.mkdir()
        url, database = make_store_url(engine, folder)
        made[engine] = Store(url, create=True)
        databases.append(database)
        init_store(made[engine])
        insert_rows(made[engine], random_tables(seed=7, customers=60))
    yield made
    for store in made.values():
        store.dispose()
    for database in filter(None, databases):
        drop_postgres_database(database)


def test_every_engine_gives_the_same_frame(stores):
    frames = {engine: customer_features(store, AS_OF) for engine, store in stores.items()}
    first = frames.pop("duckdb")
    assert 30 < len(first) < 56  # 60 customers, 4 merged away, some created after as_of
    for engine, frame in frames.items():
        assert (frame.dtypes == first.dtypes).all(), engine
        pd.testing.assert_frame_equal(frame, first, check_exact=False, rtol=1e-12, atol=1e-12)
    expected = reference_features(random_tables(seed=7, customers=60), AS_OF)
    pd.testing.assert_frame_equal(first, expected, check_exact=False, rtol=1e-9, atol=1e-12)
