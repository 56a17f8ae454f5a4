"""Purging archived lists: files before the date go, their export_log rows say who and why.

Published lists and later archives are never touched, and a purge whose rows
cannot be marked deletes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from test_find_lists import (
    DAY,
    SECRET,
    archive,
    project,
    publish,
    run_lists_command,
    withdraw,
)

from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.segments import archive_purge
from crm_ml.segments.archive_purge import purge_archive
from crm_ml.segments.find import find_lists
from crm_ml.store import Store
from crm_ml.store.schema import ExportLog

__all__ = ["project"]  # the fixture, shared with the find tests

EARLY, LATE = datetime(2024, 6, 2, 8, 0, 0), datetime(2024, 7, 15, 9, 30, 0)
PURGED = r"purged at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by dpo; replaced by a later run at "


def _three_runs(store: Store, settings: Settings) -> tuple[Path, Path]:
    """Publish, re-run (archive at EARLY), re-run (archive at LATE); return both archives."""
    publish(store, settings)
    early = archive(store, settings, EARLY)
    withdraw(store, "c2")
    publish(store, settings)
    late = archive(store, settings, LATE)
    publish(store, settings)
    return early, late


def _files(settings: Settings) -> list[str]:
    return sorted(
        p.relative_to(settings.reports_dir).as_posix()
        for p in settings.reports_dir.rglob("*")
        if p.is_file()
    )


def _log(store: Store) -> dict[str, tuple[str, str | None]]:
    """``export_id -> (status, reason)`` of every export_log row."""
    with store.connect() as conn:
        rows = conn.execute(select(ExportLog.export_id, ExportLog.status, ExportLog.reason)).all()
    return {export_id: (status, reason) for export_id, status, reason in rows}


def test_archives_before_the_date_are_deleted_and_their_rows_marked(
    store: Store, project: Settings
) -> None:
    early, late = _three_runs(store, project)
    before = _log(store)
    kept_in = f"archived in {DAY}/_replaced/{early.parent.name}/segment_lists"
    in_early = {i for i, (status, _) in before.items() if status.endswith(kept_in)}
    files_before = _files(project)

    summary = purge_archive(
        store, project, before="2024-07-01", actor="dpo", reason="kept 30 days, rule R-12"
    )

    assert not early.parent.exists()  # the archive folder is gone, not left empty
    gone = f"{DAY}/_replaced/{early.parent.name}/"
    assert _files(project) == [f for f in files_before if not f.startswith(gone)]
    assert len(files_before) - len(_files(project)) == 3 == summary.files
    after = _log(store)
    assert len(in_early) == 3 == summary.rows_marked
    for export_id, (status, reason) in after.items():
        if export_id in in_early:
            assert re.match(PURGED, status), status
            assert status.endswith(kept_in)
            assert reason == "purged: kept 30 days, rule R-12"
        else:
            assert (status, reason) == before[export_id]  # the later archive, the published lists
    assert late.is_dir() and (project.reports_dir / DAY / "segment_lists").is_dir()
    assert str(summary).startswith(
        "Purged 1 archive folder(s) made before 2024-07-01 UTC: 3 file(s) deleted, "
        "3 export_log row(s) marked purged."
    )


def test_an_unmasked_exports_reason_is_kept_beside_the_purge_reason(
    store: Store, project: Settings
) -> None:
    publish(store, project, unmask=True, unmask_reason="call-back campaign")
    archive(store, project, EARLY)

    purge_archive(store, project, before="2024-06-03", actor="dpo", reason="retention")

    reasons = {reason for _, reason in _log(store).values()}
    assert reasons == {"call-back campaign; purged: retention"}


def test_a_purge_whose_rows_cannot_be_marked_deletes_nothing(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _three_runs(store, project)
    files, logged = _files(project), _log(store)
    real = archive_purge.mark_purged

    def mark_then_fail(*args: object, **kwargs: object) -> int:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("connection lost")

    monkeypatch.setattr(archive_purge, "mark_purged", mark_then_fail)
    with pytest.raises(RuntimeError, match="connection lost"):
        purge_archive(store, project, before="2025-01-01", actor="dpo", reason="retention")

    assert _files(project) == files  # every file back in place, no stray copies
    assert _log(store) == logged


def test_nothing_before_the_date_and_folders_not_named_as_times_are_left_alone(
    store: Store, project: Settings
) -> None:
    _three_runs(store, project)
    odd = project.reports_dir / DAY / "_replaced" / "by-hand"
    odd.mkdir()
    (odd / "x.csv").write_text("pseudo_id\n")
    files, logged = _files(project), _log(store)

    summary = purge_archive(store, project, before="2024-06-01", actor="dpo", reason="retention")

    assert (_files(project), _log(store)) == (files, logged)
    assert str(summary) == (
        "No archived lists made before 2024-06-01 UTC; nothing purged.\n"
        "Left alone (not named as an archive time, check by hand):\n"
        f"  {odd}"
    )


@pytest.mark.parametrize(("actor", "reason"), [("", "retention"), ("dpo", " "), ("dpo", "")])
def test_a_purge_needs_an_actor_and_a_reason(
    store: Store, project: Settings, actor: str, reason: str
) -> None:
    _three_runs(store, project)
    files = _files(project)
    with pytest.raises(ValidationError, match="Purging archived lists needs an actor and a reason"):
        purge_archive(store, project, before="2025-01-01", actor=actor, reason=reason)
    assert _files(project) == files


def test_the_command_purges_and_says_what_it_did(
    store: Store, project: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    early, late = _three_runs(store, project)
    argv = ["lists", "purge-archive", "--before", "2025-01-01", "--actor", "dpo",
            "--reason", "retention rule R-12"]  # fmt: skip

    assert run_lists_command(argv, project) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Purged 2 archive folder(s) made before 2025-01-01 UTC: 5 file(s) deleted, "
        "5 export_log row(s) marked purged.",  # 3 + 2 (m2 had no file then)
        f"  {early.parent}",
        f"  {late.parent}",
    ]
    assert not (project.reports_dir / DAY / "_replaced").exists()
    assert _files(project) == [
        f"{DAY}/segment_lists/everyone_20240601_sms_owner-m1.csv",
        f"{DAY}/segment_lists/everyone_20240601_sms_unowned.csv",
    ]


def test_a_person_is_searched_for_after_a_purge_and_found_only_where_files_remain(
    store: Store, project: Settings
) -> None:
    publish(store, project)
    archive(store, project, EARLY)
    withdraw(store, "c1")
    publish(store, project)
    purge_archive(store, project, before="2024-06-03", actor="dpo", reason="retention")

    # The purged rows name no file any more: c1 was only in the purged archive.
    assert find_lists(store, project, "c1", secret=SECRET).files.empty
    found = find_lists(store, project, "c2", secret=SECRET).files
    assert found["state"].tolist() == ["published"]


def test_a_purge_killed_after_setting_files_aside_is_finished_by_the_next_one(
    store: Store, project: Settings
) -> None:
    early, _ = _three_runs(store, project)
    for path in early.iterdir():  # as set_aside leaves them, before the rows are committed
        path.rename(path.with_name(f".{path.name}.0123456789ab.replaced"))

    summary = purge_archive(store, project, before="2024-07-01", actor="dpo", reason="R-12")

    assert (summary.files, summary.rows_marked) == (3, 3)
    assert not early.parent.exists()
