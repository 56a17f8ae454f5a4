"""A report run killed while publishing is finished by the next run (the publish journal).

Each kill is real: the run goes on in a child process that SIGKILLs itself at
one point of publishing, so no ``finally`` block, rollback or clean-up runs, as
after a power cut or the OOM killer. The next run (here ``_clear_interrupted``,
which every run calls first) must leave files and export_log as if the killed
run had finished publishing, or had not begun.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_reporting import DAY
from test_reporting_archive import (
    LIST,
    _archives,
    _log,
    _run_id,
    exporting,
    exporting_duckdb,
)

from crm_ml.config import Settings
from crm_ml.processes import this_process
from crm_ml.reporting import JOURNAL_AGE_S, JOURNAL_SUFFIX, _clear_interrupted, run_report

__all__ = ["exporting", "exporting_duckdb"]  # the fixtures, shared with the archive tests

#: The report's kernel and the killed runs open the test's store, so the test must not hold it.
pytestmark = pytest.mark.store_released

#: Runs the ``exports`` report and kills itself at the point named by argv[1].
KILLED_RUN = """
import os, signal, sys
from datetime import date
from pathlib import Path

import crm_ml.reporting as reporting
from crm_ml.config import Settings

where = sys.argv[1]
real_publish, real_rename, real_unlink = reporting._publish, Path.rename, Path.unlink


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def publish(*args):
    if where == "before any move":
        die()
    real_publish(*args)
    if where == "after the moves":  # files in place, the transaction not committed
        die()


def rename(self, target):
    if where == "between the renames" and self.parent.parent.name == "_staging":
        die()  # the earlier lists are archived; the staged ones are about to move
    return real_rename(self, target)


def unlink(self, *args, **kwargs):
    if where == "after the commit" and self.name.endswith(reporting.JOURNAL_SUFFIX):
        die()
    return real_unlink(self, *args, **kwargs)


reporting._publish, Path.rename, Path.unlink = publish, rename, unlink
reporting.run_report(Settings.from_env(), "exports", as_of=date(2025, 6, 30))
"""


def _killed_run(where: str) -> None:
    """Run the report in a child process (it reads the project from the environment) and kill it."""
    ended = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, where], capture_output=True, text=True, timeout=600
    )
    assert ended.returncode == -signal.SIGKILL, ended.stderr


def _journals(settings: Settings) -> list[Path]:
    return sorted((settings.reports_dir / "_staging").glob(f"*{JOURNAL_SUFFIX}"))


def _statuses(settings: Settings) -> dict[str, tuple[str, str]]:
    """``export_id: (status, path)``; each run's export_id is the run id in its list."""
    return {run: (status, path) for run, status, path in _log(settings)}


def _replaced_into(archive: Path) -> str:
    """The status of a row whose list ``archive`` (``…/_replaced/<time>``) holds."""
    at = datetime.strptime(archive.name[:15], "%Y%m%dT%H%M%S")
    return (
        f"replaced by a later run at {at:%Y-%m-%d %H:%M:%S} UTC; "
        f"archived in 2025-06-30/_replaced/{archive.name}/exports"
    )


def _nothing_marked_unpublished(settings: Settings) -> bool:
    return not any(status.startswith("not published") for _, status, _ in _log(settings))


def test_a_run_killed_after_moving_its_files_is_logged_as_published_by_the_next_run(exporting):
    (published,) = run_report(exporting, "exports", as_of=DAY).files
    first = _run_id(published)
    _killed_run("after the moves")
    killed = _run_id(published)  # its list is in place ...
    (archive,) = _archives(exporting)
    assert _run_id(archive / "exports" / LIST) == first
    status, path = _statuses(exporting)[killed]  # ... but export_log still names its staging
    assert status == "written" and "_staging" in path and not Path(path).exists()
    assert _statuses(exporting)[first] == ("written", str(published))
    assert len(_journals(exporting)) == 1

    _clear_interrupted(exporting)
    assert _statuses(exporting) == {
        killed: ("written", str(published)),
        first: (_replaced_into(archive), str(published)),
    }
    assert _journals(exporting) == [] and not list((exporting.reports_dir / "_staging").iterdir())

    # The trail stays right through the next re-run: each list is where its row says.
    (again,) = run_report(exporting, "exports", as_of=DAY).files
    latest = _run_id(again)
    second = next(a for a in _archives(exporting) if a != archive)
    assert _run_id(second / "exports" / LIST) == killed
    assert _statuses(exporting) == {
        latest: ("written", str(published)),
        killed: (_replaced_into(second), str(published)),
        first: (_replaced_into(archive), str(published)),
    }
    assert _nothing_marked_unpublished(exporting)


def test_a_run_killed_between_archiving_and_moving_its_lists_is_completed_by_the_next_run(
    exporting_duckdb,
):
    settings = exporting_duckdb
    report = run_report(settings, "exports", as_of=DAY)
    (published,) = report.files
    first = _run_id(published)
    _killed_run("between the renames")
    assert not published.parent.exists()  # the earlier lists archived, the new ones still staged
    (archive,) = _archives(settings)
    assert _run_id(archive / "exports" / LIST) == first
    page_before = report.html.stat().st_mtime_ns

    (published_again,) = run_report(settings, "exports", as_of=DAY).files
    assert published_again == published
    latest = _run_id(published)
    statuses = _statuses(settings)
    (killed,) = set(statuses) - {first, latest}
    # The killed run's lists and page were published, then archived by this run.
    second = next(a for a in _archives(settings) if a != archive)
    assert _run_id(second / "exports" / LIST) == killed
    assert report.html.stat().st_mtime_ns != page_before
    assert statuses == {
        latest: ("written", str(published)),
        killed: (_replaced_into(second), str(published)),
        first: (_replaced_into(archive), str(published)),
    }
    assert _journals(settings) == [] and not list((settings.reports_dir / "_staging").iterdir())


def test_a_run_killed_before_moving_anything_did_not_publish(exporting_duckdb):
    settings = exporting_duckdb
    (published,) = run_report(settings, "exports", as_of=DAY).files
    first = _run_id(published)
    _killed_run("before any move")
    assert len(_journals(settings)) == 1

    _clear_interrupted(settings)
    assert _run_id(published) == first and _archives(settings) == []  # the report untouched
    statuses = _statuses(settings)
    (killed,) = set(statuses) - {first}
    assert statuses[first] == ("written", str(published))
    assert statuses[killed][0] == "not published (run interrupted)"
    assert _journals(settings) == [] and not list((settings.reports_dir / "_staging").iterdir())


def test_a_run_killed_after_its_commit_keeps_its_rows_written(exporting_duckdb):
    settings = exporting_duckdb
    (published,) = run_report(settings, "exports", as_of=DAY).files
    first = _run_id(published)
    _killed_run("after the commit")
    killed = _run_id(published)
    (archive,) = _archives(settings)
    logged = _statuses(settings)
    assert len(_journals(settings)) == 1

    _clear_interrupted(settings)  # the journal names a publish that had committed
    assert (
        _statuses(settings)
        == logged
        == {
            killed: ("written", str(published)),
            first: (_replaced_into(archive), str(published)),
        }
    )
    assert _journals(settings) == []


def _set_owner(path: Path, owner: dict[str, str]) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    record.get("owner", record).update(owner)  # a journal holds its owner; a RUN file is one
    path.write_text(json.dumps(record), encoding="utf-8")


def test_a_journal_of_a_run_still_publishing_is_left_alone_until_it_is_stale(exporting_duckdb):
    settings = exporting_duckdb
    (published,) = run_report(settings, "exports", as_of=DAY).files
    _killed_run("between the renames")
    (journal,) = _journals(settings)
    staging = journal.with_name(journal.name.removesuffix(JOURNAL_SUFFIX))
    for owned in (journal, staging / "RUN"):  # as if this process were still publishing
        _set_owner(owned, this_process())
    logged = _log(settings)

    _clear_interrupted(settings)
    assert journal.exists() and (staging / "exports" / LIST).exists()
    assert not published.parent.exists() and _log(settings) == logged

    # A publish takes seconds: a journal this old is no live run's, whatever its pid says.
    old = time.time() - JOURNAL_AGE_S - 60
    os.utime(journal, (old, old))
    _clear_interrupted(settings)
    assert published.exists() and not journal.exists() and not staging.exists()
    assert all(status != "written" or path == str(published) for _, status, path in _log(settings))
    assert _nothing_marked_unpublished(settings)


def test_a_journal_that_cannot_be_read_stops_the_clean_up_and_says_so(exporting_duckdb, caplog):
    settings = exporting_duckdb
    staging = settings.reports_dir / "_staging"
    staging.mkdir(parents=True)
    journal = staging / f"2025-06-30-exports-0badc0de{JOURNAL_SUFFIX}"
    journal.write_text("{", encoding="utf-8")
    _clear_interrupted(settings)
    assert journal.exists()
    assert re.search(
        r"cannot be finished: .*0badc0de\.publishing\.json: it cannot be read", caplog.text
    )
