"""Finding a person in the list files written: published, archived, elsewhere; merged ids too.

Lists are written by ``export_list`` into a project's reports folder as a report
run publishes them, and archived as a re-run archives them (``mark_replaced``
with the ``_replaced/<time>/`` folder, then the folder moved there).
"""

from __future__ import annotations

import argparse
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from customer_helpers import D1, owned_segment, sms_consent
from project_settings import project_settings
from sqlalchemy import insert

from crm_ml import outputs
from crm_ml.cli._common import _add_commands
from crm_ml.cli.lists import _add_lists
from crm_ml.config import Settings
from crm_ml.errors import ConfigError
from crm_ml.segments import export_list
from crm_ml.segments.export import ExportSummary
from crm_ml.segments.export_log import mark_replaced
from crm_ml.segments.find import find_lists
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerMerge

SECRET = "find-lists-test-key-5e3f9a7c"
DAY = "2024-06-01"
ARCHIVED_AT = datetime(2024, 6, 2, 8, 0, 0)


@pytest.fixture
def project(store: Store, tmp_path: Path) -> Settings:
    """c1 with m1, c2 with m2, c3 unowned, all granted; segment ``everyone`` at D1."""
    owned_segment(store, ["c1", "c2", "c3", "c4"])
    return project_settings(tmp_path, database_url=store.url)


def publish(
    store: Store, settings: Settings, folder: str = "segment_lists", **options: object
) -> ExportSummary:
    """Export ``everyone`` into ``reports/<DAY>/<folder>`` (as a report run publishes it)."""
    values: dict = {"secret": SECRET, "actor": "analyst", "channel": "sms",
                    "purpose": "marketing", **options}  # fmt: skip
    out = Path(values.pop("out_dir", settings.reports_dir / DAY / folder))
    return export_list(store, "everyone", D1, out_dir=out, **values)


def archive(
    store: Store, settings: Settings, at: datetime = ARCHIVED_AT, folder: str = "segment_lists"
) -> Path:
    """Archive ``reports/<DAY>/<folder>`` as a report re-run at ``at`` does; return the archive."""
    lists = settings.reports_dir / DAY / folder
    kept = settings.reports_dir / DAY / "_replaced" / f"{at:%Y%m%dT%H%M%S}Z" / folder
    with store.begin() as conn:
        mark_replaced(conn, lists, at, archived_in=kept.relative_to(settings.reports_dir))
    kept.parent.mkdir(parents=True)
    shutil.move(lists, kept)
    return kept


def withdraw(store: Store, customer: str) -> None:
    with store.begin() as conn:
        conn.execute(insert(Consent), [sms_consent(customer, "withdrawn", datetime(2024, 9, 1))])


def _found(store: Store, settings: Settings, customer: str, secret: str = SECRET) -> list[tuple]:
    """``(path below the reports folder, state, rows, matched_by, actor, status start)``."""
    files = find_lists(store, settings, customer, secret=secret).files
    return [
        (_below(settings, r.path), r.state, r.rows, r.matched_by, r.actor,
         None if r.status is None else r.status[:30])
        for r in files.itertuples()
    ]  # fmt: skip


def _below(settings: Settings, path: str) -> str:
    try:
        return Path(path).relative_to(settings.reports_dir).as_posix()
    except ValueError:
        return Path(path).name


def test_a_withdrawn_customer_is_found_in_the_archived_list_and_no_longer_published(
    store: Store, project: Settings
) -> None:
    publish(store, project)
    kept = archive(store, project).relative_to(project.reports_dir).as_posix()
    withdraw(store, "c1")
    publish(store, project)

    assert _found(store, project, "c1") == [
        (f"{kept}/everyone_20240601_sms_owner-m1.csv", "archived", 1, "pseudo_id", "analyst",
         "replaced by a later run at 202"),
    ]  # fmt: skip
    assert _found(store, project, "c2") == [
        (f"{DAY}/_replaced/20240602T080000Z/segment_lists/everyone_20240601_sms_owner-m2.csv",
         "archived", 1, "pseudo_id", "analyst", "replaced by a later run at 202"),
        (f"{DAY}/segment_lists/everyone_20240601_sms_owner-m2.csv",
         "published", 1, "pseudo_id", "analyst", "written"),
    ]  # fmt: skip
    assert _found(store, project, "c4") == []  # no consent: on no list


def test_an_unmasked_list_is_found_by_customer_id_whatever_the_key(
    store: Store, project: Settings
) -> None:
    publish(store, project, unmask=True, unmask_reason="call-back campaign")

    found = _found(store, project, "c3", secret="another-key-made-later-9f2b1c")

    assert found == [
        (f"{DAY}/segment_lists/everyone_20240601_sms_unowned.csv", "published", 1,
         "customer_id", "analyst", "written"),
    ]  # fmt: skip
    both = find_lists(store, project, "c3", secret=SECRET).files
    assert both["matched_by"].tolist() == ["pseudo_id and customer_id"]


def test_a_list_written_before_a_merge_is_found_from_either_id(
    store: Store, project: Settings
) -> None:
    publish(store, project)  # c3 is on the unowned list under its own pseudonymous id
    with store.begin() as conn:
        conn.execute(
            insert(CustomerMerge).values(
                merged_id="c3", surviving_id="c1", merged_at=datetime(2024, 9, 1), reason="dup"
            )
        )

    for asked in ("c1", "c3"):
        found = find_lists(store, project, asked, secret=SECRET)
        assert found.records == ("c1", "c3")
        assert [Path(p).name for p in found.files["path"]] == [
            "everyone_20240601_sms_owner-m1.csv",
            "everyone_20240601_sms_unowned.csv",
        ]
    assert str(found).startswith("c3 (the same person as c1): in 2 of 3 list file(s) read")


def test_files_logged_outside_the_reports_folder_are_searched_too(
    store: Store, project: Settings, tmp_path: Path
) -> None:
    publish(store, project, out_dir=tmp_path / "sent")

    assert _found(store, project, "c2") == [
        ("everyone_20240601_sms_owner-m2.csv", "elsewhere", 1, "pseudo_id", "analyst", "written")
    ]


def test_other_files_are_skipped_and_unreadable_ones_named(store: Store, project: Settings) -> None:
    publish(store, project)
    day = project.reports_dir / DAY
    (day / "retention_analysis").mkdir()
    (day / "retention_analysis" / "cohorts.csv").write_text("cohort,n\n2024-01,3\n")
    (day / "retention_analysis" / "broken.csv").write_bytes(b"\xff\xfe\x00bad\x00")
    # A list nobody logged, left in a report run's staging folder.
    stray = project.reports_dir / "_staging" / "2024-06-01-lists-1a2b3c4d" / "lists" / "m1.csv"
    stray.parent.mkdir(parents=True)
    shutil.copy(day / "segment_lists" / "everyone_20240601_sms_owner-m1.csv", stray)

    found = find_lists(store, project, "c1", secret=SECRET)

    assert found.unreadable == (day / "retention_analysis" / "broken.csv",)
    assert found.searched == 6
    rows = found.files
    assert rows["state"].tolist() == ["published", "unpublished"]
    assert rows["export_id"].isna().tolist() == [False, True]
    text = str(found)
    assert "not in export_log" in text
    assert "1 file(s) could not be read; check them by hand:" in text
    assert text.startswith("c1: in 2 of 6 list file(s) read (1 published, 1 unpublished)")


def test_an_id_not_in_the_store_is_searched_and_said_so(store: Store, project: Settings) -> None:
    publish(store, project)
    found = find_lists(store, project, "c9", secret=SECRET)
    assert not found.in_store
    assert str(found) == (
        "c9: in 0 of 3 list file(s) read; c9 is not in the store (mistyped, or deleted since)"
    )


@pytest.mark.parametrize("secret", [None, ""])
def test_finding_without_the_secret_is_refused(
    store: Store, project: Settings, secret: str | None
) -> None:
    with pytest.raises(ConfigError, match=r"needs the key .* Set CRM_ML_EXPORT_SECRET"):
        find_lists(store, project, "c1", secret=secret)


def test_lists_made_with_a_weak_key_can_still_be_searched(
    store: Store, project: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    publish(store, project)  # with SECRET; searched with a weak key, nothing matches
    found = find_lists(store, project, "c1", secret="a" * 32)
    assert found.files.empty
    assert "only 1 different character(s)" in caplog.text
    assert "Searching with it anyway" in caplog.text


def run_lists_command(argv: list[str], settings: Settings) -> int:
    """Run a ``crm-ml lists`` command with ``settings`` (the group is wired into ``crm-ml``)."""
    parser = argparse.ArgumentParser(prog="crm-ml")
    _add_lists(_add_commands(parser, "command"))
    args = parser.parse_args(argv)
    return int(args.func(args, settings))


def test_the_command_prints_each_file_its_state_and_its_log_row(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    publish(store, project)
    archive(store, project)
    monkeypatch.setenv("CRM_ML_EXPORT_SECRET", SECRET)

    assert run_lists_command(["lists", "find", "c2"], project) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "c2: in 1 of 3 list file(s) read (1 archived)"
    assert out[1].startswith("  [archived] ") and out[1].endswith(
        "_replaced/20240602T080000Z/segment_lists/everyone_20240601_sms_owner-m2.csv  "
        "(1 row(s), by pseudo_id)"
    )
    assert out[2].startswith("      export_log ")
    assert " UTC by analyst, sms/marketing, masked; status: replaced by a later run at " in out[2]


def _leftover(published: Path, kind: str) -> Path:
    """What a writer killed while replacing ``published`` leaves: a hidden copy beside it."""
    hidden = published.with_name(f".{published.name}.0123456789ab.{kind}")
    shutil.copyfile(published, hidden)
    return hidden


@pytest.mark.parametrize("kind", ["tmp", "replaced"])
def test_a_hidden_copy_left_by_an_interrupted_writer_is_found_and_said_so(
    store: Store, project: Settings, tmp_path: Path, kind: str
) -> None:
    publish(store, project, out_dir=tmp_path / "sent")
    hidden = _leftover(tmp_path / "sent" / "everyone_20240601_sms_owner-m2.csv", kind)

    found = find_lists(store, project, "c2", secret=SECRET)

    files = found.files
    assert [
        (Path(p).name, state) for p, state in zip(files["path"], files["state"], strict=True)
    ] == [
        (hidden.name, "leftover"),
        ("everyone_20240601_sms_owner-m2.csv", "elsewhere"),
    ]
    assert files["rows"].tolist() == [1, 1] and files["export_id"].isna().tolist() == [True, False]
    assert "left by a list writer that was interrupted: delete it" in str(found)


def test_the_next_export_deletes_leftovers_once_they_are_an_hour_old(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(store, project)
    folder = project.reports_dir / DAY / "segment_lists"
    hidden = [
        _leftover(folder / "everyone_20240601_sms_owner-m1.csv", "tmp"),
        _leftover(folder / "everyone_20240601_sms_owner-m2.csv", "replaced"),
    ]
    publish(store, project)  # a minute old at most: a running writer's, kept
    assert all(path.exists() for path in hidden)

    monkeypatch.setattr(outputs, "LEFTOVER_AGE_S", 0.0)  # as if an hour had passed
    publish(store, project)

    assert not any(path.exists() for path in hidden)
    assert sorted(p.name for p in folder.iterdir()) == [
        "everyone_20240601_sms_owner-m1.csv",
        "everyone_20240601_sms_owner-m2.csv",
        "everyone_20240601_sms_unowned.csv",
    ]


def test_a_logged_list_deleted_by_hand_is_named_as_missing(store: Store, project: Settings) -> None:
    # Its log row still says "written": it may have held the person, or been sent on.
    summary = publish(store, project)
    assert find_lists(store, project, "c1", secret=SECRET).missing == ()
    gone = Path(sorted(summary.files["path"])[0])
    gone.unlink()
    found = find_lists(store, project, "c1", secret=SECRET)
    assert found.missing == (gone.resolve(),)
    assert "1 list file(s) the export log records as written are not where it says" in str(found)
    assert str(gone.resolve()) in str(found)
    # Archived by a re-run, the log points into the archive: a file deleted there is missing too.
    kept = archive(store, project)
    archived = sorted(kept.glob("*.csv"))
    archived[0].unlink()
    missing = find_lists(store, project, "c1", secret=SECRET).missing
    assert {m.name for m in missing} == {gone.name, archived[0].name}
    assert {m.parent for m in missing} == {kept.resolve()}
