"""When the store's server goes away or the disk fills up: one error line, nothing half-written.

Not crm_ml's bugs, so no traceback (``-v`` shows it), and the line says that
the failed write was rolled back and the command can run again. A bug still
raises with its traceback.
"""

from __future__ import annotations

import errno
import os

import pytest
from project_settings import cli_project
from sqlalchemy import func, select
from store_urls import POSTGRES_URL, drop_postgres_database, make_store_url

import crm_ml.store.export
import crm_ml.store.loading
from crm_ml.cli import main
from crm_ml.errors import StoreError
from crm_ml.store import Store, init_store
from crm_ml.store.schema import Order

CUSTOMERS = "customer_id,created_at\nC1,2024-01-01\nC2,2024-01-01\n"
ORDERS = (
    "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
    "O1,C1,2024-02-01,offline,100,100\nO2,C2,2024-02-03,online,50,50\n"
)
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="needs CRM_ML_TEST_POSTGRES_URL (CI sets it)"
)


def _lose_connection(conn) -> None:
    """End this connection's server process, as a restart of PostgreSQL does.

    Through the driver's own connection, as the bulk COPY path writes: SQLAlchemy
    does not see the failure, so it does not know the connection is gone.
    """
    conn.connection.driver_connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")


@pytest.fixture
def postgres(tmp_path):
    url, database = make_store_url("postgresql", tmp_path)
    pg = Store(url)
    init_store(pg)
    yield pg
    pg.dispose()
    drop_postgres_database(database)


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = cli_project(tmp_path, monkeypatch)
    for name, body in (("customer.csv", CUSTOMERS), ("orders.csv", ORDERS)):
        (root / name).write_text(body, encoding="utf-8")
    return root


@pytest.mark.postgres
@needs_postgres
def test_a_lost_connection_keeps_the_error_that_says_what_happened(postgres):
    # The rollback on the dead connection fails too; its error used to replace this one.
    with pytest.raises(StoreError, match="Nothing was written"), postgres.begin() as conn:
        try:
            _lose_connection(conn)
        except Exception as lost:
            raise StoreError("Writing failed. Nothing was written.") from lost


@pytest.mark.postgres
@needs_postgres
def test_an_import_cut_off_by_a_server_restart_says_so_and_loads_on_the_next_run(
    postgres, project, monkeypatch, capsys
):
    monkeypatch.setenv("CRM_ML_DATABASE_URL", postgres.url)
    assert main(["import", "customer", "customer.csv"]) == 0
    applying = crm_ml.store.loading._apply

    def restarted(conn, *args, **kwargs):
        _lose_connection(conn)
        return applying(conn, *args, **kwargs)

    monkeypatch.setattr(crm_ml.store.loading, "_apply", restarted)
    assert main(["import", "orders", "orders.csv"]) == 2
    err = capsys.readouterr().err
    assert "crm-ml: error: the store failed: " in err
    assert "Run the command again when the store is reachable" in err
    assert "Traceback" not in err
    monkeypatch.setattr(crm_ml.store.loading, "_apply", applying)  # the server is back
    with postgres.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Order)).scalar() == 0
    assert main(["import", "orders", "orders.csv"]) == 0
    with postgres.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Order)).scalar() == 2


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "exported/orders")


def test_a_full_disk_is_one_error_line_and_the_traceback_only_with_v(project, monkeypatch, capsys):
    assert main(["init"]) == 0
    monkeypatch.setattr(crm_ml.store.export, "export_parquet", _full_disk)
    assert main(["export", "parquet", "exported"]) == 2
    err = capsys.readouterr().err
    assert "crm-ml: error: the disk is full: [Errno 28] No space left on device" in err
    assert "Free space and run the command again" in err and "Traceback" not in err
    assert main(["-v", "export", "parquet", "exported"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_still_raises_with_its_traceback(project, monkeypatch):
    assert main(["init"]) == 0

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(crm_ml.store.export, "export_parquet", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["export", "parquet", "exported"])
