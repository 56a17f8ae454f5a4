"""A DuckDB file held by another process (a notebook kernel, say) is waited for, then named."""

import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from crm_ml.errors import ConfigError, StoreLockedError
from crm_ml.store import Store, init_store

HOLD = """
import duckdb, sys, time
conn = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path, seconds):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


@pytest.fixture
def duckdb_file(tmp_path):
    path = tmp_path / "crm.duckdb"
    init_store(Store(f"duckdb:///{path}"))
    return path


def test_a_store_held_briefly_by_another_process_is_waited_for(duckdb_file, caplog):
    holder = _hold(duckdb_file, 1.5)
    started = time.monotonic()
    with Store(f"duckdb:///{duckdb_file}", lock_timeout=20).connect() as conn:
        assert conn.execute(text("select count(*) from customer")).scalar_one() == 0
    assert time.monotonic() - started >= 0.5
    holder.wait()
    # The wait is announced once, naming the holder, not silent and not once per retry.
    said = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1
    assert (
        f"PID {holder.pid}" in said[0].getMessage() and "waiting up to 20 s" in said[0].getMessage()
    )


def test_a_store_held_too_long_names_the_holder(duckdb_file):
    holder = _hold(duckdb_file, 10)
    try:
        with (
            pytest.raises(
                StoreLockedError, match=rf"held by .*\(PID {holder.pid}\).*notebook kernel"
            ),
            Store(f"duckdb:///{duckdb_file}", lock_timeout=0.5).connect(),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_connections_are_released_after_each_operation(duckdb_file):
    store = Store(f"duckdb:///{duckdb_file}")
    with store.connect() as conn:
        conn.execute(text("select 1"))
    # Another process can open the file at once: nothing is held between operations.
    check = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(duckdb_file)!r}).close()"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url"])
def test_unsupported_urls_are_refused(url):
    with pytest.raises(ConfigError, match="database"):
        _ = Store(url).engine
