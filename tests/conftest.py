"""Shared fixtures: an empty, initialised store on every engine.

``store`` runs each test on DuckDB and SQLite always, and on PostgreSQL when
``CRM_ML_TEST_POSTGRES_URL`` names a server (CI always sets it and fails if
those tests were skipped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_urls import POSTGRES_URL, drop_postgres_database, make_store_url

from crm_ml.store import Store, init_store

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


@pytest.fixture
def store(engine_name: str, tmp_path: Path) -> Iterator[Store]:
    """An empty, initialised store on each engine."""
    url, pg_db = make_store_url(engine_name, tmp_path)
    st = Store(url, create=True)
    init_store(st)
    yield st
    st.dispose()
    if pg_db:
        drop_postgres_database(pg_db)


@pytest.fixture
def duckdb_store(tmp_path: Path) -> Iterator[Store]:
    """An empty, initialised DuckDB store, for tests that need only one engine."""
    st = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}", create=True)
    init_store(st)
    yield st
    st.dispose()


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
