"""export_list exports only what the current rule chose, and says when nobody is left."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, T0, add_customers, features
from sqlalchemy import insert, select

from crm_ml.errors import NotFoundError
from crm_ml.segments import (
    ExportSummary,
    Segment,
    export_list,
    save_segment,
    segment_members,
    snapshot_segment,
)
from crm_ml.segments.members import segment_usage, snapshot_rule_version
from crm_ml.store import Store
from crm_ml.store.schema import Consent, ExportLog

SECRET = "snapshot-version-test-secret-0123"
FRAME = features(recency_days=[90.0, 10.0, 70.0])


def _consented(store: Store, ids: list[str]) -> None:
    add_customers(store, ["c1", "c2", "c3"])
    rows = [
        {"customer_id": c, "channel": "sms", "purpose": "marketing", "updated_at": T0,
         "status": "granted", "source": "test"}
        for c in ids
    ]  # fmt: skip
    if rows:
        with store.begin() as conn:
            conn.execute(insert(Consent), rows)


def _export(store: Store, out: Path, frame: pd.DataFrame | None = FRAME) -> ExportSummary:
    return export_list(
        store, "lapsed", D1, channel="sms", purpose="marketing", out_dir=out, secret=SECRET,
        actor="ana", features=frame,
    )  # fmt: skip


def test_a_snapshot_of_an_older_rule_is_taken_again(duckdb_store: Store, tmp_path: Path) -> None:
    store = duckdb_store
    _consented(store, ["c1", "c2", "c3"])
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    snapshot_segment(store, "lapsed", FRAME, D1)  # rule v1: c1 and c3
    save_segment(store, Segment("lapsed", "recency_days > 80"), actor="bo")  # v2: c1 only
    summary = _export(store, tmp_path)
    note = "The snapshot of lapsed at 2024-06-01 used rule v1: took one with rule v2 (1 members)."
    assert (summary.rule_version, summary.kept, summary.snapshot_note) == (2, 1, note)
    assert str(summary).endswith(f"1 file(s). {note}")
    assert snapshot_rule_version(store, "lapsed", D1) == 2
    assert list(segment_members(store, "lapsed", D1)) == ["c1"]
    with store.connect() as conn:
        logged = conn.execute(select(ExportLog.rule_version, ExportLog.rows_kept)).all()
    assert [tuple(row) for row in logged] == [(2, 1)]


def test_the_current_snapshot_is_used_as_it_is(duckdb_store: Store, tmp_path: Path) -> None:
    store = duckdb_store
    _consented(store, ["c1", "c2", "c3"])
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    snapshot_segment(store, "lapsed", FRAME, D1)
    summary = _export(store, tmp_path, frame=features(recency_days=[0.0, 0.0, 0.0]))
    assert (summary.kept, summary.snapshot_note) == (2, "")


def test_an_outdated_snapshot_without_features_is_refused(
    duckdb_store: Store, tmp_path: Path
) -> None:
    store = duckdb_store
    _consented(store, ["c1"])
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    snapshot_segment(store, "lapsed", FRAME, D1)
    save_segment(store, Segment("lapsed", "recency_days > 80"), actor="bo")
    with pytest.raises(NotFoundError, match="taken with rule v1, but the segment is now v2"):
        _export(store, tmp_path / "lists", frame=None)
    assert not (tmp_path / "lists").exists() or not any((tmp_path / "lists").iterdir())
    assert snapshot_rule_version(store, "lapsed", D1) == 1


@pytest.mark.parametrize(
    ("rule", "consented", "says"),
    [
        ("recency_days > 1000", ["c1"], "0 customers to contact, the segment has no members"),
        (
            "recency_days > 60",
            ["c2"],
            "0 customers to contact, all 2 members excluded (0 withdrawn, 2 no consent)",
        ),
    ],
)
def test_an_export_with_nobody_to_contact_says_so(
    duckdb_store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    rule: str,
    consented: list[str],
    says: str,
) -> None:
    store = duckdb_store
    _consented(store, consented)
    save_segment(store, Segment("lapsed", rule), actor="ana")
    with caplog.at_level(logging.INFO, logger="crm_ml.segments.export"):
        summary = _export(store, tmp_path)
    assert f": {says}; 1 file(s) with a header only." in str(summary)
    assert [r.levelname for r in caplog.records if "Exported" in r.message] == ["WARNING"]
    (path,) = summary.files["path"]
    assert len(Path(path).read_text(encoding="utf-8-sig").splitlines()) == 1  # the header


def test_segment_usage_names_exporters_and_snapshots(duckdb_store: Store, tmp_path: Path) -> None:
    store = duckdb_store
    _consented(store, ["c1"])
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    assert segment_usage(store, "lapsed") == "never exported or snapshotted"
    _export(store, tmp_path)
    assert segment_usage(store, "lapsed") == (
        "lists exported by ana; snapshots at 1 date, 2024-06-01"
    )
