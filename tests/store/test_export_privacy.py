"""A Parquet export and a reject report hold unmasked personal data: owner-only, and audited.

An export is every customer's names, phones, emails and consent, so it is kept
like an unmasked list: files 0600 in 0700 folders, the manifest says who ran it
and why, and a warning names the folder and the number of customers.
"""

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import insert, select

from crm_ml.store import Store
from crm_ml.store.export import MANIFEST, export_parquet
from crm_ml.store.rejects import write_report
from crm_ml.store.schema import Customer, Order, StoreExport

TABLES = ["customer", "orders"]


def _mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def _fill(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {"customer_id": c, "status": "active", "created_at": datetime(2023, 5, 1)}
                for c in ("C1", "C2", "C3")
            ],
        )
        conn.execute(
            insert(Order),
            [
                {
                    "order_id": f"o{year}",
                    "customer_id": "C1",
                    "ordered_at": datetime(year, 1, 2),
                    "channel": "online",
                    "gross_amount": 10.0,
                    "discount_amount": 0.0,
                    "net_amount": 10.0,
                }
                for year in (2024, 2025)
            ],
        )


@pytest.fixture
def filled(duckdb_store: Store) -> Store:
    _fill(duckdb_store)
    return duckdb_store


@pytest.fixture
def shared_umask():
    """A umask that makes files readable by others (0644), as on most systems."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_exported_files_are_owner_only_in_owner_only_folders(filled, tmp_path, shared_umask):
    out = tmp_path / "pq"
    export_parquet(filled, out, tables=TABLES)
    files = [p for p in out.rglob("*") if p.is_file()]
    folders = [p for p in out.rglob("*") if p.is_dir()]
    assert {p.name for p in files} == {"part-0.parquet", MANIFEST}
    assert any(p.name == "year=2025" for p in folders)  # partition folders too
    assert {str(p.relative_to(out)): _mode(p) for p in files} == {
        str(p.relative_to(out)): 0o600 for p in files
    }
    assert {_mode(p) for p in folders} == {0o700}
    assert _mode(out) == 0o700  # the export made it


def test_a_re_export_over_a_shared_export_makes_it_owner_only(filled, tmp_path, shared_umask):
    out = tmp_path / "pq"
    out.mkdir(mode=0o755)
    (out / "customer").mkdir()
    (out / "customer" / "part-0.parquet").write_bytes(b"old")
    (out / MANIFEST).write_text("{}")
    os.chmod(out / MANIFEST, 0o644)
    export_parquet(filled, out, tables=TABLES)
    assert _mode(out / "customer") == 0o700
    assert _mode(out / "customer" / "part-0.parquet") == 0o600
    assert _mode(out / MANIFEST) == 0o600
    assert _mode(out) == 0o755  # a folder it did not make keeps its mode (it may be shared)


def test_the_manifest_records_who_exported_and_why(filled, tmp_path):
    export_parquet(filled, tmp_path / "pq", tables=TABLES, actor="li.wei", reason="Spark backfill")
    manifest = json.loads((tmp_path / "pq" / MANIFEST).read_text(encoding="utf-8"))
    assert (manifest["actor"], manifest["reason"]) == ("li.wei", "Spark backfill")


def test_the_store_records_each_export_where_deleting_the_folder_cannot_remove_it(filled, tmp_path):
    before = datetime.now(UTC).replace(tzinfo=None)
    export_parquet(filled, tmp_path / "pq", tables=TABLES, actor="li.wei", reason="Spark backfill")
    export_parquet(filled, tmp_path / "orders", tables=["orders"], actor="li.wei")
    shutil.rmtree(tmp_path / "pq")
    with filled.connect() as conn:
        rows = conn.execute(select(StoreExport.__table__).order_by("exported_at")).all()
    recorded = [(r.actor, r.reason, r.folder, r.tables, r.customers) for r in rows]
    assert recorded == [
        ("li.wei", "Spark backfill", str(tmp_path / "pq"), "customer,orders", 3),
        ("li.wei", None, str(tmp_path / "orders"), "orders", None),  # no customer table
    ]
    assert all(before <= r.exported_at <= datetime.now(UTC).replace(tzinfo=None) for r in rows)


def test_without_an_actor_the_manifest_names_the_login_and_no_reason(filled, tmp_path, monkeypatch):
    monkeypatch.setenv("LOGNAME", "wang.fang")
    export_parquet(filled, tmp_path / "pq", tables=TABLES)
    manifest = json.loads((tmp_path / "pq" / MANIFEST).read_text(encoding="utf-8"))
    assert (manifest["actor"], manifest["reason"]) == ("wang.fang", None)


def test_an_export_warns_once_that_it_holds_unmasked_personal_data(filled, tmp_path, caplog):
    out = tmp_path / "pq"
    with caplog.at_level("WARNING", logger="crm_ml.store.export"):
        export_parquet(filled, out, tables=TABLES, actor="li.wei")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert f"li.wei exported the store to {out}" in warnings[0]
    assert "unmasked personal data of 3 customers" in warnings[0]
    assert "readable by the owner only (mode 600)" in warnings[0]


def test_a_reject_report_is_owner_only_even_replacing_a_shared_one(tmp_path, shared_umask):
    rejects = pd.DataFrame(
        {
            "file": ["ident.csv"],
            "line": [2],
            "column": ["value"],
            "rule": ["phone"],
            "value": ["13102525364x"],
        }
    )
    path = tmp_path / "ident.rejects.csv"
    write_report(rejects, path)
    assert _mode(path) == 0o600
    os.chmod(path, 0o644)
    write_report(rejects, path)
    assert _mode(path) == 0o600
    assert "13102525364x" in path.read_text(encoding="utf-8-sig")  # kept, to fix the file
