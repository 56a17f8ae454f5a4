"""Re-runs archive the lists they replace; a report about one customer is published under its id.

The notebooks here are tiny (tests/test_reporting.py builds them); the export
notebook logs its list in the store of the parametrised ``store`` fixture, as a
report's ``export_list`` would.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from test_reporting import DAY, _notebook

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.reporting import ReportFailedError, list_reports, run_report
from crm_ml.store import Store

#: The report's kernel opens the test's store, so the test must not hold it.
pytestmark = pytest.mark.store_released

LIST = "churn_20250630_sms_unowned.csv"
EXPORT = f"""
import datetime, pathlib, uuid
from sqlalchemy import insert
from crm_ml.config import Settings
from crm_ml.store import Store
from crm_ml.store.schema import ExportLog

if "no-export" not in tags:
    run = uuid.uuid4().hex
    path = pathlib.Path(output_dir, "{LIST}")
    path.write_text("pseudo_id\\n" + run + "\\n", encoding="utf-8")
    store = Store(Settings.from_env().database_url)
    with store.begin() as conn:
        conn.execute(insert(ExportLog).values(
            export_id=run, exported_at=datetime.datetime(2025, 6, 30), actor="report",
            as_of=datetime.datetime(2025, 6, 30), channel="sms", purpose="marketing",
            rows_kept=1, rows_excluded=0, unmasked=False, path=str(path),
        ))
    store.dispose()
if fail:
    raise RuntimeError("boom")
"""


def _project(root: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    env = {"CRM_ML_HOME": str(root), "CRM_ML_DATABASE_URL": url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel reads them too
    (root / "notebooks").mkdir(parents=True)
    _notebook(root / "notebooks" / "exports.ipynb", EXPORT)
    return Settings.from_env(environ=env)


@pytest.fixture
def exporting(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project whose report ``exports`` logs its list in the parametrised store."""
    return _project(tmp_path / "project", store.url, monkeypatch)


@pytest.fixture
def exporting_duckdb(duckdb_store: Store, tmp_path: Path, monkeypatch) -> Settings:
    return _project(tmp_path / "project", duckdb_store.url, monkeypatch)


def _log(settings: Settings) -> list[tuple[str, str, str]]:
    """``(export_id, status, path)`` of every export_log row."""
    store = Store(settings.database_url)
    with store.connect() as conn:
        rows = conn.exec_driver_sql("select export_id, status, path from export_log").all()
    store.dispose()
    return sorted((str(i), str(s), str(p)) for i, s, p in rows)


def _run_id(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[1]


def _archives(settings: Settings) -> list[Path]:
    return sorted((settings.reports_dir / "2025-06-30" / "_replaced").glob("*"))


def test_a_rerun_archives_the_earlier_list_and_names_the_archive_in_export_log(exporting):
    (published,) = run_report(exporting, "exports", as_of=DAY).files
    first = _run_id(published)
    (again,) = run_report(exporting, "exports", as_of=DAY).files
    assert again == published and _run_id(published) != first

    (archive,) = _archives(exporting)
    stamp = re.fullmatch(r"(\d{8}T\d{6})Z", archive.name)
    assert stamp, archive.name
    archived = archive / "exports" / LIST
    assert _run_id(archived) == first  # who was on the list the staff worked from
    at = datetime.strptime(stamp[1], "%Y%m%dT%H%M%S")
    assert _log(exporting) == sorted(
        [
            (
                first,
                f"replaced by a later run at {at:%Y-%m-%d %H:%M:%S} UTC; "
                f"archived in 2025-06-30/_replaced/{archive.name}/exports",
                str(published),
            ),
            (_run_id(published), "written", str(published)),
        ]
    )
    assert [name for _, name, _ in list_reports(exporting)] == ["exports"]  # archives not listed


def test_a_rerun_without_lists_archives_the_earlier_ones_and_an_empty_folder_is_not_archived(
    exporting_duckdb,
):
    (published,) = run_report(exporting_duckdb, "exports", as_of=DAY).files
    first = _run_id(published)
    none = run_report(exporting_duckdb, "exports", as_of=DAY, parameters={"tags": ["no-export"]})
    assert none.files == ()
    (archive,) = _archives(exporting_duckdb)
    assert _run_id(archive / "exports" / LIST) == first
    # The next run replaces a folder with no files: nothing to archive.
    (third,) = run_report(exporting_duckdb, "exports", as_of=DAY).files
    assert _archives(exporting_duckdb) == [archive]
    statuses = {run: status for run, status, _ in _log(exporting_duckdb)}
    assert statuses[_run_id(third)] == "written"
    assert statuses[first].endswith(f"; archived in 2025-06-30/_replaced/{archive.name}/exports")


def test_a_failed_rerun_archives_nothing(exporting_duckdb):
    (published,) = run_report(exporting_duckdb, "exports", as_of=DAY).files
    first = _run_id(published)
    with pytest.raises(ReportFailedError, match="RuntimeError: boom"):
        run_report(exporting_duckdb, "exports", as_of=DAY, parameters={"fail": True})
    assert _archives(exporting_duckdb) == []
    assert _run_id(published) == first
    assert (first, "written", str(published)) in _log(exporting_duckdb)


# ----------------------------------------------------------------- reports about one customer

ABOUT = """
import pathlib
pathlib.Path(output_dir, "note.txt").write_text(customer_id, encoding="utf-8")
print("customer", customer_id)
"""


def _about_notebook(root: Path, code: str = ABOUT) -> Settings:
    (root / "notebooks").mkdir()
    _notebook(root / "notebooks" / "about.ipynb", code)
    about = nbformat.read(root / "notebooks" / "about.ipynb", as_version=4)
    about.cells[1].source += 'customer_id = "C0001"  # whom the report is about\n'
    nbformat.write(about, root / "notebooks" / "about.ipynb")
    return Settings.from_env(environ={"CRM_ML_HOME": str(root)})


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_report_about_a_customer_is_published_under_its_id(tmp_path, monkeypatch, capsys):
    settings = _about_notebook(tmp_path)
    first = run_report(settings, "about", as_of=DAY, parameters={"customer_id": "C00013767"})
    second = run_report(settings, "about", as_of=DAY, parameters={"customer_id": "C00008620"})
    day = settings.reports_dir / "2025-06-30"
    assert first.html == day / "about-C00013767.html"
    assert second.html == day / "about-C00008620.html"
    assert "customer C00013767" in first.html.read_text(encoding="utf-8")  # not overwritten
    assert first.files == (day / "about-C00013767" / "note.txt",)
    assert [name for _, name, _ in list_reports(settings)] == ["about-C00013767", "about-C00008620"]

    monkeypatch.setenv("CRM_ML_HOME", str(tmp_path))
    assert main(["report", "list"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in shown] == [
        ["2025-06-30", "about-C00013767"],
        ["2025-06-30", "about-C00008620"],
    ]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_report_about_a_customer_is_its_owners_only(tmp_path):
    settings = _about_notebook(tmp_path)
    previous = os.umask(0o022)
    try:
        about = run_report(settings, "about", as_of=DAY, parameters={"customer_id": "C00013767"})
        general = run_report(settings, "about", as_of=DAY, parameters={"customer_id": ""})
    finally:
        os.umask(previous)
    assert [_mode(p) for p in (about.notebook, about.html, *about.files)] == [0o600] * 3
    assert _mode(about.files[0].parent) == 0o700
    assert general.html.name == "about.html"  # about no one: shared as every report is
    assert [_mode(p) for p in (general.notebook, general.html, *general.files)] == [0o644] * 3


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_failed_report_about_a_customer_is_kept_owner_only(tmp_path):
    settings = _about_notebook(tmp_path, ABOUT + "raise RuntimeError('boom')\n")
    previous = os.umask(0o022)
    try:
        with pytest.raises(ReportFailedError):
            run_report(settings, "about", as_of=DAY, parameters={"customer_id": "C00013767"})
    finally:
        os.umask(previous)
    (failed,) = (settings.reports_dir / "_failed").glob("*.ipynb")
    assert "C00013767" in failed.read_text(encoding="utf-8")
    assert _mode(failed) == 0o600


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"customer_id": "C00013767", "as_of": "2026-01-08"}, "customer_360-C00013767"),
        ({"customer_id": "000123"}, "customer_360-000123"),  # text: the zeros stay
        ({"as_of": "2026-01-08"}, "customer_360"),  # a report about no one customer
        ({"customer_id": None}, "customer_360"),
    ],
)
def test_the_published_name_carries_the_customer_id(parameters, expected) -> None:
    from crm_ml.reporting import published_name

    assert published_name("customer_360", parameters) == expected


def test_an_id_that_is_not_safe_in_a_file_name_is_made_safe() -> None:
    from crm_ml.reporting import published_name

    name = published_name("customer_360", {"customer_id": "../x"})
    assert re.fullmatch(r"customer_360-x-[0-9a-f]{8}", name), name


def test_lists_already_gone_are_marked_replaced_without_an_archive(exporting_duckdb):
    (published,) = run_report(exporting_duckdb, "exports", as_of=DAY).files
    first = _run_id(published)
    published.unlink()  # deleted by hand: there is nothing to archive
    run_report(exporting_duckdb, "exports", as_of=DAY)
    assert _archives(exporting_duckdb) == []
    statuses = {run: status for run, status, _ in _log(exporting_duckdb)}
    assert re.fullmatch(r"replaced by a later run at .{19} UTC", statuses[first])
