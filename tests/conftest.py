"""Shared fixtures: an empty, initialised store on every engine.

``store`` runs each test on DuckDB and SQLite always, and on PostgreSQL when
``CRM_ML_TEST_POSTGRES_URL`` names a server (CI always sets it and fails if
those tests were skipped).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from store_urls import POSTGRES_URL, EmptyStores, drop_postgres_database

from crm_ml.store import Store

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

ENGINES = [
    "duckdb",
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_URL,
                reason="PostgreSQL tests need CRM_ML_TEST_POSTGRES_URL (CI sets it via .ci/run)",
            ),
        ],
    ),
]


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engine under test: duckdb, sqlite or postgresql."""
    return str(request.param)


@pytest.fixture(scope="session")
def empty_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmptyStores]:
    """This test process's templates of an empty, initialised store, one per engine."""
    stores = EmptyStores(tmp_path_factory.mktemp("empty_stores"))
    yield stores
    stores.drop()


@contextmanager
def _kept_open(store: Store, request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep a DuckDB store's database open in this process while the test runs.

    A ``Store`` opens and closes DuckDB around every unit of work, since closing
    releases the file lock. An open costs 25-40 ms and a test makes about ten;
    while one connection stays open, DuckDB reuses its database for the others.
    A test whose other processes open the store is marked ``store_released``.
    """
    if store.dialect != "duckdb" or request.node.get_closest_marker("store_released"):
        yield
        return
    held = store.engine.connect()
    try:
        yield
    finally:
        held.close()


@contextmanager
def _empty_store(
    engine: str, tmp_path: Path, empty_stores: EmptyStores, request: pytest.FixtureRequest
) -> Iterator[Store]:
    url, pg_db = empty_stores.new(engine, tmp_path)
    st = Store(url, create=True)
    with _kept_open(st, request):
        yield st
    st.dispose()
    if pg_db:
        drop_postgres_database(pg_db)


@pytest.fixture
def store(
    engine_name: str, tmp_path: Path, empty_stores: EmptyStores, request: pytest.FixtureRequest
) -> Iterator[Store]:
    """An empty, initialised store on each engine."""
    with _empty_store(engine_name, tmp_path, empty_stores, request) as st:
        yield st


@pytest.fixture
def duckdb_store(
    tmp_path: Path, empty_stores: EmptyStores, request: pytest.FixtureRequest
) -> Iterator[Store]:
    """An empty, initialised DuckDB store, for tests that need only one engine."""
    with _empty_store("duckdb", tmp_path, empty_stores, request) as st:
        yield st


@pytest.fixture
def cdnow_dir() -> Path:
    """The CDNOW data set in ../shared, or a skip that says why."""
    folder = SHARED_DATA / "cdnow"
    if not (folder / "CDNOW_sample.txt").exists():
        pytest.skip(f"CDNOW data not found at {folder} (it ships in ../shared beside the repo)")
    return folder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CRM_ML_FORBID_SKIPS=1``), a skipped test fails the run."""
    if not os.environ.get("CRM_ML_FORBID_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"CRM_ML_FORBID_SKIPS is set and {len(skipped)} test(s) were skipped "
            "(PostgreSQL, CDNOW or Spark tests must run in CI):",
            red=True,
        )
        for report in skipped[:20]:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
            reporter.write_line(f"  {report.nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Small data: generating and compiling code costs more than it saves (~20 % of the run).
# Same results: bench/spark.py checks Spark with code generation against DuckDB.
SPARK_TEST_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def _missing_spark() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin/java").exists()):
        return "Java is not installed (Spark needs Java 17, e.g. openjdk-17-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one local Spark session of a test worker (start-up dominates the Spark tests).

    CI (``CRM_ML_FORBID_SKIPS=1``) fails the tests that need it when pyspark or
    Java is missing; elsewhere they are skipped with the reason.
    """
    missing = _missing_spark()
    if missing:
        if os.environ.get("CRM_ML_FORBID_SKIPS"):
            pytest.fail(f"Spark tests must run in CI: {missing}")
        pytest.skip(missing)
    from crm_ml.spark import spark_session

    session = spark_session("local[2]", shuffle_partitions=1, conf=SPARK_TEST_CONF)
    yield session
    session.stop()
