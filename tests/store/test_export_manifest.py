"""The Parquet export's manifest: written last, so a killed re-export is detectable on import.

``crm-ml export parquet DIR`` swaps each table in whole, but one killed part-way
through a re-export leaves tables from two moments side by side. The manifest,
deleted first and written last, marks DIR as complete; ``crm-ml import`` of a
table folder warns when its DIR is clearly an incomplete or mixed export.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

import crm_ml
from crm_ml.errors import ConfigError
from crm_ml.store import Store
from crm_ml.store import export as export_module
from crm_ml.store.export import MANIFEST, export_parquet
from crm_ml.store.loading import import_file
from crm_ml.store.schema import SCHEMA_VERSION, Customer, Order

TABLES = ["customer", "orders", "coupon"]
MIXED = "incomplete or mixed"


def _fill(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {"customer_id": c, "status": "active", "created_at": datetime(2023, 5, 1)}
                for c in ("000123", "000124")
            ],
        )
        conn.execute(
            insert(Order),
            [
                {
                    "order_id": f"o{i}",
                    "customer_id": "000123",
                    "ordered_at": datetime(2024, 1, i),
                    "channel": "online",
                    "gross_amount": 10.0,
                    "discount_amount": 0.0,
                    "net_amount": 10.0,
                }
                for i in (1, 2, 3)
            ],
        )


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def _import_warnings(store: Store, folder: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Import ``folder`` (every row: a warning never refuses) and return the warnings logged."""
    with caplog.at_level("WARNING"):
        result = import_file(store, folder.name, folder, reject_dir=folder.parent.parent)
    assert result.rejected == 0
    assert result.inserted + result.unchanged == result.rows_read > 0
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.fixture
def exported(duckdb_store: Store, tmp_path: Path) -> Path:
    """A complete export of ``TABLES`` from a small store."""
    _fill(duckdb_store)
    export_parquet(duckdb_store, tmp_path / "pq", tables=TABLES)
    return tmp_path / "pq"


# --------------------------------------------------------------------------- export


def test_the_manifest_gives_versions_time_and_every_tables_row_count(exported, duckdb_store):
    manifest = _manifest(exported)
    assert manifest["tables"] == {
        "customer": {"rows": 2},
        "orders": {"rows": 3},
        "coupon": {"rows": 0},
    }
    assert manifest["crm_ml_version"] == crm_ml.__version__
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["store"] == duckdb_store.url
    started = datetime.fromisoformat(manifest["started_at"])
    assert started.utcoffset().total_seconds() == 0
    assert started <= datetime.fromisoformat(manifest["finished_at"])


def test_the_manifest_names_the_store_without_its_password():
    store = Store("postgresql+psycopg://crm:s3cret@db.example/crm")
    manifest = export_module._manifest(store, SCHEMA_VERSION, datetime.now(UTC), [])
    assert "s3cret" not in manifest["store"]
    assert manifest["store"].startswith("postgresql+psycopg://crm:")


def test_an_export_failing_part_way_leaves_no_manifest_even_where_one_was(
    exported, duckdb_store, monkeypatch
):
    assert (exported / MANIFEST).is_file()
    real = export_module.export_table
    done: list[str] = []

    def fail_on_the_second_table(store, name, out_dir):
        if done:
            raise RuntimeError("killed")
        done.append(name)
        return real(store, name, out_dir)

    monkeypatch.setattr(export_module, "export_table", fail_on_the_second_table)
    with pytest.raises(RuntimeError, match="killed"):
        export_parquet(duckdb_store, exported, tables=TABLES)
    assert done == ["customer"]
    assert not (exported / MANIFEST).exists()


def test_a_table_export_that_fails_removes_its_staging_folder(exported, duckdb_store, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "_swap_in", fail)
    with pytest.raises(OSError, match="disk full"):
        export_parquet(duckdb_store, exported, tables=["customer"])
    assert not [p.name for p in exported.iterdir() if p.name.startswith(".")]


def test_leftovers_of_a_killed_export_are_removed_by_the_next_export(
    exported, duckdb_store, caplog
):
    for name in (".orders.tmp-1234abcd", ".customer.old-0badcafe", ".coupon.tmp-00000000"):
        (exported / name).mkdir()
        (exported / name / "part-0.parquet").write_bytes(b"personal data")
    with caplog.at_level("WARNING", logger="crm_ml.store.export"):
        export_parquet(duckdb_store, exported, tables=["customer", "orders"])
    hidden = sorted(p.name for p in exported.iterdir() if p.name.startswith("."))
    assert hidden == [".coupon.tmp-00000000"]  # only the exported tables' leftovers go
    assert ".orders.tmp-1234abcd" in caplog.text
    assert ".customer.old-0badcafe" in caplog.text


def test_export_refuses_a_folder_named_like_the_manifest_before_writing(duckdb_store, tmp_path):
    (tmp_path / "pq" / MANIFEST).mkdir(parents=True)
    with pytest.raises(ConfigError, match="manifest"):
        export_parquet(duckdb_store, tmp_path / "pq", tables=TABLES)
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == [MANIFEST]


# --------------------------------------------------------------------------- import


def test_importing_a_table_of_a_complete_export_does_not_warn(exported, duckdb_store, caplog):
    assert not [
        w for w in _import_warnings(duckdb_store, exported / "orders", caplog) if MIXED in w
    ]


def test_importing_a_table_whose_manifest_count_disagrees_warns(exported, duckdb_store, caplog):
    manifest = _manifest(exported)
    manifest["tables"]["orders"]["rows"] = 5
    (exported / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    said = [w for w in _import_warnings(duckdb_store, exported / "orders", caplog) if MIXED in w]
    assert len(said) == 1
    assert "5 rows" in said[0] and "3" in said[0] and "Export the store again" in said[0]


def test_importing_a_table_the_manifest_does_not_list_warns(exported, duckdb_store, caplog):
    export_parquet(duckdb_store, exported, tables=["customer"])  # orders now from before
    said = _import_warnings(duckdb_store, exported / "orders", caplog)
    assert any("does not list orders" in w and MIXED in w for w in said)


def test_importing_from_a_killed_export_with_leftovers_warns(exported, duckdb_store, caplog):
    (exported / MANIFEST).unlink()
    (exported / ".orders.tmp-1234abcd").mkdir()
    said = _import_warnings(duckdb_store, exported / "customer", caplog)
    assert any(".orders.tmp-1234abcd" in w and MIXED in w for w in said)


def test_importing_a_hand_made_folder_without_manifest_does_not_warn(
    exported, duckdb_store, caplog
):
    (exported / MANIFEST).unlink()
    assert not [
        w for w in _import_warnings(duckdb_store, exported / "orders", caplog) if MIXED in w
    ]
