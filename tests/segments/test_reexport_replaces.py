"""A re-export of a segment, date and channel into a folder replaces the earlier set of files.

Files the earlier export wrote (as ``export_log`` records them) that the new one
does not rewrite are removed, and the earlier rows say they were replaced, in
the words a report re-run uses. Nothing else in the folder is touched, and a
re-export that fails leaves the earlier files and rows as they were.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from customer_helpers import D1, owned_segment, sms_consent
from sqlalchemy import insert, select, update

from crm_ml.segments import export_list
from crm_ml.segments.export import ExportSummary
from crm_ml.segments.headers import read_list
from crm_ml.store import Store
from crm_ml.store.schema import Consent, Customer, ExportLog

SECRET = "reexport-secret-0123456789abcdef"
REPLACED = r"replaced by a later run at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.fixture
def three(store: Store) -> Store:
    """c1 with m1, c2 with m2, c3 unowned; all granted; segment ``everyone`` snapshot at D1."""
    owned_segment(store, ["c1", "c2", "c3"])
    return store


def _export(store: Store, folder: Path, channel: str = "sms") -> ExportSummary:
    return export_list(
        store, "everyone", D1, channel=channel, purpose="marketing", out_dir=folder,
        secret=SECRET, actor="analyst", unmask=True, unmask_reason="test: call-back",
    )  # fmt: skip


def _withdraw(store: Store, customer: str) -> None:
    with store.begin() as conn:
        conn.execute(insert(Consent), [sms_consent(customer, "withdrawn", datetime(2024, 9, 1))])


def _log(store: Store) -> dict[tuple[str, str], int]:
    """``(file name, status with the time masked) -> rows``."""
    with store.connect() as conn:
        rows = conn.execute(select(ExportLog.path, ExportLog.status)).all()
    counted: dict[tuple[str, str], int] = {}
    for path, status in rows:
        key = (Path(path).name, "replaced" if status.startswith("replaced by") else status)
        counted[key] = counted.get(key, 0) + 1
    return counted


def test_a_reexport_removes_the_earlier_files_it_does_not_rewrite(
    three: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "lists"
    first = _export(three, folder)
    assert sorted(Path(p).name for p in first.files["path"]) == [
        "everyone_20240601_sms_owner-m1.csv",
        "everyone_20240601_sms_owner-m2.csv",
        "everyone_20240601_sms_unowned.csv",
    ]
    _withdraw(three, "c2")  # m2's only customer: m2 gets no file this time

    second = _export(three, folder)

    assert sorted(p.name for p in folder.iterdir()) == [
        "everyone_20240601_sms_owner-m1.csv",
        "everyone_20240601_sms_unowned.csv",
    ]
    assert read_list(folder / "everyone_20240601_sms_owner-m1.csv")["customer_id"].tolist() == [
        "c1"
    ]
    assert _log(three) == {
        ("everyone_20240601_sms_owner-m1.csv", "replaced"): 1,
        ("everyone_20240601_sms_owner-m2.csv", "replaced"): 1,
        ("everyone_20240601_sms_unowned.csv", "replaced"): 1,
        ("everyone_20240601_sms_owner-m1.csv", "written"): 1,
        ("everyone_20240601_sms_unowned.csv", "written"): 1,
    }
    with three.connect() as conn:
        statuses = conn.execute(
            select(ExportLog.status).where(ExportLog.export_id.in_(first.files["export_id"]))
        ).scalars()
        assert all(re.fullmatch(REPLACED, s) for s in statuses)
        written = conn.execute(
            select(ExportLog.export_id).where(ExportLog.status == "written")
        ).scalars()
        assert sorted(written) == sorted(second.files["export_id"])


def test_only_the_logged_files_of_that_segment_date_channel_and_folder_are_removed(
    three: Store, tmp_path: Path
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    _export(three, here)
    _export(three, there)
    _export(three, here, channel="email")  # no email consent: one header-only unowned file
    # Files the log does not name for this export stay, whatever their names.
    (here / "notes.csv").write_text("keep me\n", encoding="utf-8")
    (here / "everyone_20240601_sms_owner-m9.csv").write_text("by hand\n", encoding="utf-8")
    _withdraw(three, "c2")

    _export(three, here)

    assert sorted(p.name for p in here.iterdir()) == [
        "everyone_20240601_email_unowned.csv",
        "everyone_20240601_sms_owner-m1.csv",
        "everyone_20240601_sms_owner-m9.csv",
        "everyone_20240601_sms_unowned.csv",
        "notes.csv",
    ]
    assert (there / "everyone_20240601_sms_owner-m2.csv").exists()  # another folder
    with three.connect() as conn:
        rows = conn.execute(select(ExportLog.path, ExportLog.status)).all()
    kept = {Path(p).relative_to(tmp_path).as_posix() for p, s in rows if s == "written"}
    assert kept == {
        "here/everyone_20240601_sms_owner-m1.csv",
        "here/everyone_20240601_sms_unowned.csv",
        "here/everyone_20240601_email_unowned.csv",
        "there/everyone_20240601_sms_owner-m1.csv",
        "there/everyone_20240601_sms_owner-m2.csv",
        "there/everyone_20240601_sms_unowned.csv",
    }


def test_a_reexport_that_fails_to_write_keeps_the_earlier_files_and_log(
    three: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crm_ml.segments.export as export_module

    folder = tmp_path / "lists"
    _export(three, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    logged = _log(three)
    _withdraw(three, "c2")
    with three.begin() as conn:  # so the first file the re-export writes would change
        conn.execute(update(Customer).where(Customer.customer_id == "c1").values(name="张四"))
    real = export_module.write_excel_csv
    calls: list[Path] = []

    def fail_second(frame: object, path: Path, **options: object) -> Path:
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(frame, path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(export_module, "write_excel_csv", fail_second)
    with pytest.raises(OSError, match="disk full"):
        _export(three, folder)

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no stray files
    assert _log(three) == logged


class Killed(BaseException):
    """Stands for the process being killed: nothing after it runs, no handler catches it."""


def test_an_export_killed_before_confirming_its_files_leaves_rows_saying_so(
    three: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crm_ml.segments.export as export_module
    from crm_ml.store.schema import EXPORT_WRITING

    folder = tmp_path / "lists"
    _export(three, folder)
    _withdraw(three, "c2")  # the re-export drops m2's file

    def killed(*args: object) -> None:
        raise Killed

    monkeypatch.setattr(export_module, "_confirm", killed)
    with pytest.raises(Killed):
        _export(three, folder)
    monkeypatch.undo()

    # The files are the new set, and the log says who wrote them and why, unconfirmed.
    assert sorted(p.name for p in folder.iterdir()) == [
        "everyone_20240601_sms_owner-m1.csv",
        "everyone_20240601_sms_unowned.csv",
    ]
    with three.connect() as conn:
        rows = conn.execute(select(ExportLog.status, ExportLog.reason)).all()
    assert (
        sorted(rows)
        == [(EXPORT_WRITING, "test: call-back")] * 2 + [("written", "test: call-back")] * 3
    )
    _export(three, folder)  # the next export takes the set over
    assert _log(three) == {
        ("everyone_20240601_sms_owner-m1.csv", "replaced"): 2,
        ("everyone_20240601_sms_owner-m2.csv", "replaced"): 1,
        ("everyone_20240601_sms_unowned.csv", "replaced"): 2,
        ("everyone_20240601_sms_owner-m1.csv", "written"): 1,
        ("everyone_20240601_sms_unowned.csv", "written"): 1,
    }
