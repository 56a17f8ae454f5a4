"""Upgrading a store made by an earlier crm_ml: every step, all or nothing, nothing lost."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import insert, inspect, select, text, update

from crm_ml.cli import main
from crm_ml.errors import SchemaVersionError
from crm_ml.segments import Segment, save_segment, segment_history
from crm_ml.store import Store, check_store, init_store, migrations, upgrade_store
from crm_ml.store.export import export_parquet
from crm_ml.store.schema import (
    SCHEMA_VERSION,
    Customer,
    CustomerChange,
    ErasedCustomer,
    ExportLog,
    Product,
    SchemaInfo,
    SegmentDefinition,
    StoreExport,
)

CREATED = datetime.datetime(2025, 5, 1, 9, 30)
V1_PATHS = {
    "failed": "not published (report failed, see /r/_failed/x.ipynb): /r/_staging/a.csv",
    "replaced": "replaced by a later run at 2025-07-01 02:30:05 UTC: /r/lists/b.csv",
    "written": "/r/lists/c: d.csv",  # a colon in a path is not a status
}


def _as_version_4(store: Store) -> None:
    """Take a new store back to schema 4: no record of store exports."""
    with store.begin() as conn:
        conn.execute(text("DROP TABLE store_export"))
        conn.execute(text("UPDATE schema_info SET version = 4"))


def _as_version_3(store: Store) -> None:
    """Take a new store back to schema 3: no erasure marks."""
    _as_version_4(store)
    with store.begin() as conn:
        conn.execute(text("DROP TABLE erased_customer"))
        conn.execute(text("UPDATE schema_info SET version = 3"))


def _as_version_2(store: Store) -> None:
    """Take a new store back to schema 2: no reason for an export."""
    _as_version_3(store)
    with store.begin() as conn:
        conn.execute(text("ALTER TABLE export_log DROP COLUMN reason"))
        conn.execute(text("UPDATE schema_info SET version = 2"))


def _as_version_1(store: Store) -> None:
    """Take a new store back to schema 1: no segment history, an export's status in its path."""
    _as_version_2(store)
    with store.begin() as conn:
        conn.execute(text("DROP TABLE segment_change"))
        conn.execute(text("ALTER TABLE export_log DROP COLUMN status"))
        conn.execute(text("UPDATE schema_info SET version = 1"))
        conn.execute(
            insert(SegmentDefinition).values(
                segment_id="lapsed",
                name="lapsed",
                label="流失会员",
                rule="recency_days > 90",
                kind="dynamic",
                version=3,
                created_at=CREATED,
                created_by="ana",
            )
        )
        for export_id, path in V1_PATHS.items():
            conn.execute(
                text(
                    "INSERT INTO export_log (export_id, exported_at, actor, segment_id, "
                    "rule_version, as_of, channel, purpose, rows_kept, rows_excluded, unmasked, "
                    "path) VALUES (:id, :at, 'ana', 'lapsed', 3, :at, 'sms', 'marketing', 5, 1, "
                    ":unmasked, :path)"
                ),
                {"id": export_id, "at": CREATED, "unmasked": False, "path": path},
            )


@pytest.fixture
def old_store(store: Store) -> Store:
    _as_version_1(store)
    return store


def _columns(store: Store) -> dict[str, set[str]]:
    """Each table's column names (read from a query: DuckDB's inspector cannot list columns)."""
    with store.connect() as conn:
        tables = inspect(conn).get_table_names()
        return {t: set(conn.execute(text(f"SELECT * FROM {t} WHERE 1 = 0")).keys()) for t in tables}


def test_an_old_store_is_refused_with_the_command_that_upgrades_it(old_store):
    with (
        pytest.raises(SchemaVersionError, match=r"version 1.*`crm-ml upgrade`"),
        old_store.connect() as conn,
    ):
        check_store(conn)
    with pytest.raises(SchemaVersionError, match="crm-ml upgrade"):
        init_store(old_store)
    assert "segment_change" not in _columns(old_store)  # init created nothing in it


def test_upgrade_moves_the_status_out_of_the_path_and_starts_the_history(old_store):
    assert upgrade_store(old_store) == (1, SCHEMA_VERSION)
    with old_store.connect() as conn:
        assert check_store(conn) == SCHEMA_VERSION
        rows = conn.execute(select(ExportLog.export_id, ExportLog.status, ExportLog.path)).all()
        versions = conn.execute(select(SchemaInfo.version).order_by(SchemaInfo.version)).all()
    assert {export_id: (status, path) for export_id, status, path in rows} == {
        "failed": ("not published (report failed, see /r/_failed/x.ipynb)", "/r/_staging/a.csv"),
        "replaced": ("replaced by a later run at 2025-07-01 02:30:05 UTC", "/r/lists/b.csv"),
        "written": ("written", "/r/lists/c: d.csv"),
    }
    assert [v for (v,) in versions] == [1, 2, 3, 4, 5]  # the store remembers it was made as v1
    (found,) = segment_history(old_store, "lapsed").itertuples()
    assert (found.revision, found.version, found.rule, found.label) == (
        1, 3, "recency_days > 90", "流失会员",
    )  # fmt: skip
    assert found.changed_by == migrations.UPGRADE_ACTOR
    assert "earlier changes were not recorded (created 2025-05-01 09:30 by ana)" in found.change


def test_an_upgraded_store_has_what_a_new_one_has_and_keeps_working(old_store, tmp_path):
    upgrade_store(old_store)
    fresh = Store(f"duckdb:///{tmp_path / 'fresh.duckdb'}", create=True)
    init_store(fresh)
    assert _columns(old_store) == _columns(fresh)
    assert upgrade_store(old_store) == (SCHEMA_VERSION, SCHEMA_VERSION)  # again: no change
    save_segment(old_store, Segment("lapsed", "recency_days > 120", "流失会员"), actor="bo")
    history = segment_history(old_store, "lapsed")
    assert list(history["revision"]) == [1, 2]
    assert list(history["version"]) == [3, 4]
    assert history.iloc[-1]["changed_by"] == "bo"


def test_a_failing_step_leaves_the_store_as_it_was(old_store, monkeypatch):
    def disk_full(conn):
        raise RuntimeError("disk full")

    # The last step fails once every schema change and the earlier steps' moves are done.
    monkeypatch.setitem(migrations.STEPS, 4, migrations.Step(migrations._to_v4_schema, disk_full))
    before = _columns(old_store)
    with pytest.raises(RuntimeError, match="disk full"):
        upgrade_store(old_store)
    assert _columns(old_store) == before
    with old_store.connect() as conn:
        paths = conn.execute(select(ExportLog.__table__.c.path)).scalars().all()
        version = conn.execute(text("SELECT max(version) FROM schema_info")).scalar_one()
    assert sorted(paths) == sorted(V1_PATHS.values())
    assert version == 1


def test_a_store_from_a_newer_crm_ml_is_not_touched(store):
    with store.begin() as conn:
        conn.execute(text(f"UPDATE schema_info SET version = {SCHEMA_VERSION + 1}"))
    with pytest.raises(SchemaVersionError, match="newer than this crm_ml's"):
        upgrade_store(store)


def test_the_cli_refuses_an_old_store_until_it_is_upgraded(tmp_path, monkeypatch, capsys):
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    monkeypatch.setenv("CRM_ML_HOME", str(tmp_path))
    monkeypatch.setenv("CRM_ML_DATABASE_URL", url)
    store = Store(url, create=True)
    init_store(store)
    _as_version_1(store)
    store.dispose()
    assert main(["segment", "show", "lapsed"]) == 2
    assert "Upgrade it with `crm-ml upgrade`" in capsys.readouterr().err
    assert main(["upgrade"]) == 0
    assert "from schema version 1 to 5" in capsys.readouterr().out
    assert main(["upgrade"]) == 0
    assert "is up to date (schema version 5)" in capsys.readouterr().out
    assert main(["segment", "history", "lapsed"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lapsed: 1 recorded change(s)")
    assert "v3 (dynamic)  流失会员: recency_days > 90" in out


def test_a_version_2_store_gains_the_reason_of_an_export_and_keeps_its_rows(store, tmp_path):
    with store.begin() as conn:
        conn.execute(
            insert(ExportLog).values(
                export_id="e1", exported_at=CREATED, actor="ana", segment_id="lapsed",
                rule_version=1, as_of=CREATED, channel="sms", purpose="marketing", rows_kept=5,
                rows_excluded=1, unmasked=True, path="/r/lists/a.csv", status="written",
            )
        )  # fmt: skip
    _as_version_2(store)
    with (
        pytest.raises(SchemaVersionError, match=r"version 2.*`crm-ml upgrade`"),
        store.connect() as conn,
    ):
        check_store(conn)

    assert upgrade_store(store) == (2, SCHEMA_VERSION)

    fresh = Store(f"duckdb:///{tmp_path / 'fresh.duckdb'}", create=True)
    init_store(fresh)
    assert _columns(store) == _columns(fresh)
    with store.begin() as conn:
        conn.execute(update(ExportLog).where(ExportLog.export_id == "e1").values(reason="x"))
        rows = conn.execute(select(ExportLog.export_id, ExportLog.status, ExportLog.reason)).all()
        versions = conn.execute(select(SchemaInfo.version).order_by(SchemaInfo.version)).all()
    assert rows == [("e1", "written", "x")]
    assert [v for (v,) in versions] == [2, 3, 4, 5]


def test_the_cli_upgrades_a_version_2_store(tmp_path, monkeypatch, capsys):
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    monkeypatch.setenv("CRM_ML_HOME", str(tmp_path))
    monkeypatch.setenv("CRM_ML_DATABASE_URL", url)
    store = Store(url, create=True)
    init_store(store)
    _as_version_2(store)
    store.dispose()
    assert main(["upgrade"]) == 0
    assert "from schema version 2 to 5" in capsys.readouterr().out
    assert main(["segment", "history", "nothing"]) == 2
    assert "Upgrade it" not in capsys.readouterr().err  # the store opens; the segment is unknown


ERASED_AT = datetime.datetime(2025, 6, 1, 8, 0)


def _erasure_audit(change_id: str, customer_id: str, new_value: str | None, at) -> dict:
    """The audit row an erasure wrote before schema 4: who, when, why, and the records."""
    return {
        "change_id": change_id,
        "customer_id": customer_id,
        "field": "status",
        "old_value": None,
        "new_value": new_value,
        "changed_at": at,
        "actor": "合规官",
    }


def test_a_version_3_store_marks_the_records_its_erasure_audit_rows_name(store):
    later = ERASED_AT + datetime.timedelta(days=1)
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {"customer_id": c, "created_at": CREATED, "status": status, "merged_into": into}
                for c, status, into in (
                    ("C1", "active", None),
                    ("C2", "merged", "C1"),
                    ("C3", "active", None),
                )
            ],
        )
        conn.execute(
            insert(CustomerChange),
            [
                # A second request for the same person blanked the first row's value.
                _erasure_audit("erasure:first", "C2", None, ERASED_AT),
                _erasure_audit("erasure:again", "C1", "erased C1, C2: DPO-18: repeated", later),
                _erasure_audit("erasure:gone", "C9", "erased C9: DPO-19", later),  # no such id
                {**_erasure_audit("k3", "C3", "erased C3: no", later), "field": "name"},
            ],
        )
    _as_version_3(store)

    assert upgrade_store(store) == (3, SCHEMA_VERSION)

    with store.connect() as conn:
        marks = conn.execute(select(ErasedCustomer.__table__).order_by("customer_id")).all()
    assert [tuple(m) for m in marks] == [
        ("C1", later, "erasure:again"),
        ("C2", ERASED_AT, "erasure:first"),  # its own row, the first erasure of it
    ]


def test_upgrading_stores_the_code_of_a_category_an_earlier_import_kept_by_name(store, caplog):
    # Imports before the affinity features read codes kept 美妆 as given: every
    # affinity_* feature and likes_* tag was silently 0 until the file was imported again.
    kept = {"P1": "美妆", "P2": "Beauty", "P3": "beauty", "P4": "母婴", "P5": "文具"}
    with store.begin() as conn:
        conn.execute(
            insert(Product),
            [{"product_id": p, "name": p, "category": c} for p, c in kept.items()],
        )
    _as_version_3(store)

    with caplog.at_level("WARNING", logger="crm_ml.store.migrations"):
        assert upgrade_store(store) == (3, SCHEMA_VERSION)

    with store.connect() as conn:
        stored = dict(conn.execute(select(Product.product_id, Product.category)).all())
    assert stored == {"P1": "beauty", "P2": "beauty", "P3": "beauty", "P4": "maternity_baby",
                      "P5": "文具"}  # fmt: skip
    assert "3 product(s) had a category name that the affinity features do not read" in caplog.text


def test_a_version_4_store_gains_the_record_of_store_exports(store, tmp_path):
    _as_version_4(store)
    assert upgrade_store(store) == (4, SCHEMA_VERSION)
    export_parquet(store, tmp_path / "pq", tables=["customer"], actor="dpo", reason="audit")
    with store.connect() as conn:
        recorded = conn.execute(select(StoreExport.actor, StoreExport.tables)).all()
    assert [tuple(r) for r in recorded] == [("dpo", "customer")]
