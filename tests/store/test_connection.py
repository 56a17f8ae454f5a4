"""Opening the store: a missing file is refused unless asked to create it; a DuckDB file held
by another process (a notebook kernel, say) is waited for, then named."""

import re
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from crm_ml.errors import ConfigError, StoreLockedError, StoreNotFoundError
from crm_ml.features import customer_features
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
    init_store(Store(f"duckdb:///{path}", create=True))
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


MISSING = {"duckdb": "duckdb:///{}/data/crm.duckbd", "sqlite": "sqlite:///{}/data/crm.dbb"}


@pytest.mark.parametrize("engine", MISSING)
def test_a_missing_store_file_is_refused_and_nothing_is_created(tmp_path, engine):
    store = Store(MISSING[engine].format(tmp_path))
    missing = re.escape(str(tmp_path / "data" / MISSING[engine].rsplit("/", 1)[-1]))
    said = rf"^No store exists at {missing}: .*crm-ml init.*Store\(url, create=True\)"
    with pytest.raises(StoreNotFoundError, match=said), store.connect():
        pass
    with pytest.raises(StoreNotFoundError, match="check CRM_ML_DATABASE_URL"), store.begin():
        pass
    with pytest.raises(StoreNotFoundError):
        store.engine.connect()  # pandas or Ibis given the engine are refused too
    assert list(tmp_path.iterdir()) == []  # neither the file nor its folder


@pytest.mark.parametrize("engine", MISSING)
def test_features_on_a_missing_store_file_create_nothing(tmp_path, engine):
    # Ibis opens SQLite itself, past the engine; it must be refused all the same.
    with pytest.raises(StoreNotFoundError):
        customer_features(Store(MISSING[engine].format(tmp_path)), "2024-01-01")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_store_file_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError), Store(f"duckdb:///{tmp_path / 'crm.duckdb'}").connect():
        pass


@pytest.mark.parametrize("engine", MISSING)
def test_create_makes_the_store_file_and_its_folder(tmp_path, engine):
    url = MISSING[engine].format(tmp_path)
    init_store(Store(url, create=True))
    assert (tmp_path / "data" / url.rsplit("/", 1)[-1]).is_file()
    # Every customer's personal data: the folder made for it is the owner's only.
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_an_existing_folder_keeps_its_mode(tmp_path):
    (tmp_path / "data").mkdir(mode=0o755)
    (tmp_path / "data").chmod(0o755)
    init_store(Store(f"duckdb:///{tmp_path}/data/crm.duckdb", create=True))
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o755


def test_an_existing_store_opens_without_create(store):
    with Store(store.url, create=False).connect() as conn:
        assert conn.execute(text("select count(*) from customer")).scalar_one() == 0


@pytest.mark.parametrize("url", ["duckdb:///:memory:", "sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_store_needs_no_create(url):
    with Store(url, create=False).connect() as conn:
        assert conn.execute(text("select 1")).scalar_one() == 1


@pytest.mark.store_released
def test_duckdb_draws_no_progress_bar_of_its_own(duckdb_store):
    # DuckDB turns its bar on where Python runs interactively (`python -c`, a Jupyter
    # kernel) and draws it as a widget on slow queries: into published reports.
    code = (
        "import sys; from sqlalchemy import text; from crm_ml.store import Store\n"
        "with Store(sys.argv[1]).connect() as conn:\n"
        "    print(conn.execute(text(\"select current_setting('enable_progress_bar')\")).scalar())"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code, duckdb_store.url], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "False"
