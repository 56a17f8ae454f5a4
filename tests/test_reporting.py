import datetime
import json
import os
import re
import socket
import subprocess
import sys

import nbformat
import pytest
from sqlalchemy import insert

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.report_kernel import without_shutdown_race
from crm_ml.reporting import ReportFailedError, list_reports, run_report
from crm_ml.store import Store, init_store
from crm_ml.store.admin import utc_now
from crm_ml.store.schema import ExportLog

DAY = datetime.date(2025, 6, 30)
CODE = """
import os, pathlib
pathlib.Path(output_dir, "list.csv").write_text("id\\n1\\n", encoding="utf-8")
if fail:
    raise RuntimeError("boom at " + as_of)
print("ran for", as_of, "secret length", len(os.environ.get("CRM_ML_EXPORT_SECRET", "")))
"""


PARAMETERS = """as_of = "2025-01-01"
output_dir = "."
fail = False
horizon = 90
threshold = 0.6
since = "2024-01-01"
tags = []  # a comment papermill's own parser trips over
"""


def _notebook(path, code=CODE):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "tiny.ipynb")
    return Settings.from_env(environ={"CRM_ML_HOME": str(tmp_path)})


def test_success_publishes_notebook_html_and_files(settings):
    report = run_report(settings, "tiny", as_of=DAY)
    day = settings.reports_dir / "2025-06-30"
    assert report.html == day / "tiny.html" and report.html.exists()
    assert (day / "tiny.ipynb").exists()
    assert report.files == (day / "tiny" / "list.csv",)
    page = report.html.read_text(encoding="utf-8")
    assert "ran for 2025-06-30" in page
    assert "<title>tiny · 2025-06-30</title>" in page  # the tab says which report, not "Notebook"
    assert not list((settings.reports_dir / "_staging").iterdir())
    assert list_reports(settings) == [("2025-06-30", "tiny", report.html)]


def test_the_kernel_reads_the_settings_of_the_run_not_its_own_folder(settings, monkeypatch):
    # A Python caller's settings (another store, English) reach the notebook's
    # Settings.from_env(); before, the kernel took the store its working folder gave.
    import dataclasses

    for name in settings.as_environment():
        monkeypatch.delenv(name, raising=False)
    given = dataclasses.replace(
        settings, database_url=f"duckdb:///{settings.root / 'elsewhere.duckdb'}", language="en"
    )
    _notebook(
        settings.root / "notebooks" / "where.ipynb",
        "from crm_ml.config import Settings\n"
        "seen = Settings.from_env()\n"
        "print('store:', seen.database_url, 'language:', seen.language)",
    )
    report = run_report(given, "where", as_of=DAY)

    page = report.html.read_text(encoding="utf-8")
    assert f"store: {given.database_url} language: en" in page
    assert "CRM_ML_DATABASE_URL" not in os.environ  # this process's environment is as it was


def test_the_kernel_talks_over_private_ipc_sockets_not_plain_tcp(settings, capfd):
    # The kernel inherits our stderr: over TCP it warns "Kernel is running over TCP without
    # encryption" at start-up.
    run_report(settings, "tiny", as_of=DAY)
    assert "without encryption" not in capfd.readouterr().err
    assert not list((settings.root / "notebooks").glob("kernel-ipc-*"))


def test_a_finished_runs_kernel_is_stopped_without_an_interrupt(settings):
    # jupyter_client sends SIGINT before its shutdown request. A kernel still finishing its
    # last reply then logs "ERROR | KeyboardInterrupt caught in kernel." into the cron log
    # of a run that succeeded. The cell makes the kernel's between-cells handler record it.
    signalled = settings.root / "interrupted"
    _notebook(
        settings.root / "notebooks" / "listening.ipynb",
        "import pathlib\n"
        "kernel = get_ipython().kernel\n"
        "assert hasattr(kernel, 'saved_sigint_handler')  # put back after each cell\n"
        f"kernel.saved_sigint_handler = lambda *_: pathlib.Path({str(signalled)!r}).touch()",
    )
    run_report(settings, "listening", as_of=DAY)
    assert not signalled.exists()


# What ipykernel 7.4 logs when its socket closes under a last flush as the kernel stops.
SHUTDOWN_RACE = (
    "ERROR:tornado.general:Uncaught exception in ZMQStream callback\n"
    "Traceback (most recent call last):\n"
    '  File ".../ipykernel/iostream.py", line 343, in schedule\n'
    '    self._event_pipe.send(b"")\n'
    "zmq.error.ZMQError: Socket operation on non-socket\n"
)


def test_the_kernels_shutdown_race_stays_out_of_the_cron_log_and_the_rest_reaches_it(
    settings, capfd
):
    # The kernel's own stderr is ours (the cron log). The cell makes it write, as it exits,
    # the traceback of ipykernel's shutdown race (1 run in about 100) and a line of its own.
    said = (SHUTDOWN_RACE + "内核：自己的一行\n").encode()
    _notebook(
        settings.root / "notebooks" / "exiting.ipynb",
        f"import atexit, os\natexit.register(os.write, 2, {said!r})",
    )
    run_report(settings, "exiting", as_of=DAY)
    err = capfd.readouterr().err
    assert "内核：自己的一行" in err
    assert "ZMQStream" not in err and "ZMQError" not in err


def test_only_the_shutdown_race_is_left_out_of_the_kernels_stderr():
    other = SHUTDOWN_RACE.replace("Socket operation on non-socket", "Too many open files")
    lines = ["starting\n", *SHUTDOWN_RACE.splitlines(True), "between\n", *other.splitlines(True)]
    assert "".join(without_shutdown_race(lines)) == "starting\nbetween\n" + other
    header_only = [SHUTDOWN_RACE.splitlines(True)[0], "not a traceback\n"]
    assert list(without_shutdown_race(header_only)) == header_only


def test_failure_keeps_last_good_report_and_saves_failed_notebook(settings):
    good = run_report(settings, "tiny", as_of=DAY)
    before = good.html.read_text(encoding="utf-8")
    with pytest.raises(ReportFailedError, match="RuntimeError: boom at 2025-06-30") as err:
        run_report(settings, "tiny", as_of=DAY, parameters={"fail": True})
    assert good.html.read_text(encoding="utf-8") == before
    assert "The last good report was kept; the failed notebook is" in str(err.value)
    failed = list((settings.reports_dir / "_failed").glob("2025-06-30-tiny-*.ipynb"))
    assert len(failed) == 1 and str(failed[0]) in str(err.value)


def test_a_first_failure_does_not_speak_of_a_report_kept(settings):
    # Nothing was published for the date: "the last good report was kept" would send
    # people looking for a page that never existed.
    with pytest.raises(ReportFailedError) as err:
        run_report(settings, "tiny", as_of=DAY, parameters={"fail": True})
    assert "No report of that date was published before, and none is now" in str(err.value)
    assert "kept" not in str(err.value)


TRAINING = """
from crm_ml.report_trace import note_training_run
print("tags", note_training_run("run-1"), note_training_run("run-2"))
if fail:
    raise RuntimeError("boom after training")
"""


@pytest.fixture
def attached(settings, monkeypatch):
    """Record what the report run gives MLflow: the training runs, and their files that exist."""
    from crm_ml.models import tracking

    calls = []

    def record(run_ids, files, given):
        calls.append((list(run_ids), sorted(path.name for path in files if path.is_file())))

    monkeypatch.setattr(tracking, "attach_report", record)
    _notebook(settings.root / "notebooks" / "trains.ipynb", TRAINING)
    return calls


def test_the_training_runs_a_report_started_get_its_notebook_and_page(settings, attached):
    run_report(settings, "tiny", as_of=DAY)
    assert attached == []  # no training run, MLflow is not touched
    report = run_report(settings, "trains", as_of=DAY)
    assert attached == [(["run-1", "run-2"], ["trains.html", "trains.ipynb"])]
    assert "tags {'crm_ml_report': 'trains as of 2025-06-30'}" in report.html.read_text("utf-8")
    assert not any(name.startswith("CRM_ML_REPORT") for name in os.environ)


def test_a_failed_reports_notebook_is_attached_to_its_training_runs(settings, attached):
    with pytest.raises(ReportFailedError, match="boom after training"):
        run_report(settings, "trains", as_of=DAY, parameters={"fail": True})
    assert attached == [(["run-1", "run-2"], ["trains.ipynb"])]


def test_a_registry_that_cannot_take_the_notebook_does_not_fail_the_report(
    settings, attached, monkeypatch, caplog
):
    from crm_ml.models import tracking

    def refuse(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(tracking, "attach_report", refuse)
    report = run_report(settings, "trains", as_of=DAY)
    assert report.html.exists()
    assert (
        "Could not attach report trains's notebook to its MLflow training run(s) run-1, run-2: "
        "No space left on device"
    ) in caplog.text


def test_a_report_about_one_customer_is_not_traced(settings, attached):
    # Its notebook is personal data, and a retention purge does not reach MLflow.
    path = settings.root / "notebooks" / "trains.ipynb"
    about = nbformat.read(path, as_version=4)
    about.cells[1].source += 'customer_id = ""\n'
    nbformat.write(about, path)
    report = run_report(settings, "trains", as_of=DAY, parameters={"customer_id": "C0001"})
    assert attached == []
    assert "tags {} {}" in report.html.read_text("utf-8")


def test_rerun_replaces_the_same_date(settings, tmp_path):
    run_report(settings, "tiny", as_of=DAY)
    stale = settings.reports_dir / "2025-06-30" / "tiny" / "stale.csv"
    stale.write_text("old")
    run_report(settings, "tiny", as_of=DAY)
    assert not stale.exists()
    # Not deleted: the earlier run's files are archived under the date.
    (archived,) = (settings.reports_dir / "2025-06-30" / "_replaced").glob("*/tiny/stale.csv")
    assert archived.read_text() == "old"
    assert len(list_reports(settings)) == 1


def test_secrets_in_the_environment_appear_in_no_output(settings, monkeypatch):
    canary = "CANARY-5e3f9a7c-do-not-leak"
    monkeypatch.setenv("CRM_ML_EXPORT_SECRET", canary)
    run_report(settings, "tiny", as_of=DAY)
    for path in settings.reports_dir.rglob("*"):
        if path.is_file():
            assert canary not in path.read_text(encoding="utf-8", errors="replace"), path


@pytest.mark.parametrize("params", [{"db_password": "x"}, {"api_key": "x"}])
def test_secret_like_parameters_are_refused(settings, params):
    with pytest.raises(ValidationError, match="looks like a secret"):
        run_report(settings, "tiny", as_of=DAY, parameters=params)


def test_non_literal_parameters_are_refused(settings):
    with pytest.raises(ValidationError, match="must be a literal"):
        run_report(settings, "tiny", as_of=DAY, parameters={"x": {1: 2}})


def test_unknown_report_lists_the_available_ones(settings):
    with pytest.raises(NotFoundError, match="Available: tiny"):
        run_report(settings, "nope", as_of=DAY)


def test_parameters_cell_of_published_notebook_holds_as_of(settings):
    report = run_report(settings, "tiny", as_of=DAY)
    cells = json.loads(report.notebook.read_text(encoding="utf-8"))["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "2025-06-30" in "".join(injected[0]["source"])


def _injected(report) -> str:
    cells = json.loads(report.notebook.read_text(encoding="utf-8"))["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    return "".join(injected[0]["source"])


def _nothing_ran(settings) -> bool:
    reports = settings.reports_dir
    return not list(reports.glob("_staging/*")) and not list(reports.glob("_failed/*"))


def test_text_parameters_take_the_type_of_their_default(settings):
    # The CLI passes -p values as text; the notebook must get 30, not "30".
    given = {"horizon": "30", "threshold": "0.5", "fail": "false", "since": "2024-02-01"}
    report = run_report(settings, "tiny", as_of=DAY, parameters={**given, "tags": '["vip"]'})
    injected = _injected(report)
    for line in ("horizon = 30\n", "threshold = 0.5\n", "fail = False\n", 'tags = ["vip"]'):
        assert line in injected
    assert 'since = "2024-02-01"' in injected


def test_unknown_parameter_is_refused_before_running(settings):
    good = run_report(settings, "tiny", as_of=DAY)
    before = good.html.read_text(encoding="utf-8")
    with pytest.raises(
        ValidationError, match=r"tiny has no parameter 'horizn'\. Did you mean 'horizon'\?"
    ) as err:
        run_report(settings, "tiny", as_of=DAY, parameters={"horizn": 30})
    assert "fail=False, horizon=90, threshold=0.6, since='2024-01-01', tags=[]" in str(err.value)
    assert good.html.read_text(encoding="utf-8") == before
    assert _nothing_ran(settings)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("horizon", "abc", "a whole number"),
        ("horizon", "30.5", "a whole number"),
        ("horizon", True, "a whole number"),
        ("threshold", "high", "a number"),
        ("threshold", "nan", "a number"),
        ("fail", "maybe", "true or false"),
        ("since", "2024-13-01", "a date as YYYY-MM-DD"),
        ("tags", "vip", 'a list in JSON such as ["a", "b"]'),
    ],
)
def test_a_value_that_does_not_parse_is_refused_before_running(settings, key, value, expected):
    with pytest.raises(ValidationError) as err:
        run_report(settings, "tiny", as_of=DAY, parameters={key: value})
    assert f"tiny parameter '{key}' expects {expected} (its default is " in str(err.value)
    assert str(err.value).endswith(f"got {value!r}. Nothing was run.")
    assert _nothing_ran(settings)


@pytest.mark.parametrize("key", ["as_of", "output_dir"])
def test_parameters_the_run_sets_itself_are_refused(settings, key):
    with pytest.raises(ValidationError, match=rf"'{key}' is set by the run itself"):
        run_report(settings, "tiny", as_of=DAY, parameters={key: "2024-01-01"})


EXPORT = """
import datetime, pathlib, uuid
from sqlalchemy import insert
from crm_ml.config import Settings
from crm_ml.store import Store
from crm_ml.store.schema import ExportLog

path = pathlib.Path(output_dir, "churn_20250630_sms_unowned.csv")
now = datetime.datetime(2025, 6, 30)
if "no-export" not in tags:
    path.write_text("pseudo_id\\n", encoding="utf-8")
    with Store(Settings.from_env().database_url).begin() as conn:
        conn.execute(insert(ExportLog).values(
            export_id=uuid.uuid4().hex, exported_at=now, actor="report", as_of=now, channel="sms",
            purpose="marketing", rows_kept=0, rows_excluded=0, unmasked=False, path=str(path),
        ))
if fail:
    raise RuntimeError("boom")
"""


@pytest.fixture
def exporting(tmp_path, monkeypatch):
    """Settings of a project whose report ``exports`` logs one export, and its store."""
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    for key, value in {"CRM_ML_HOME": str(tmp_path), "CRM_ML_DATABASE_URL": url}.items():
        monkeypatch.setenv(key, value)  # the kernel reads them too
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "exports.ipynb", EXPORT)
    store = Store(url, create=True)
    init_store(store)
    yield Settings.from_env(environ={"CRM_ML_HOME": str(tmp_path), "CRM_ML_DATABASE_URL": url})
    store.dispose()


def _logged_paths(settings) -> list[str]:
    """Each export_log row as ``path``, or ``status: path`` when its file is not there."""
    with Store(settings.database_url).connect() as conn:
        rows = conn.exec_driver_sql("select status, path from export_log").all()
    return [path if status == "written" else f"{status}: {path}" for status, path in rows]


def test_export_log_names_the_published_files_not_the_staging_ones(exporting):
    report = run_report(exporting, "exports", as_of=DAY)
    (published,) = report.files
    assert published.exists()
    assert _logged_paths(exporting) == [str(published)]


def test_exports_of_a_failed_report_are_marked_not_published(exporting):
    with pytest.raises(
        ReportFailedError, match=r"1 export\(s\) it logged are marked 'not published'"
    ):
        run_report(exporting, "exports", as_of=DAY, parameters={"fail": True})
    (failed,) = (exporting.reports_dir / "_failed").glob("*.ipynb")
    (path,) = _logged_paths(exporting)
    assert path.startswith(f"not published (report failed, see {failed}): ")
    assert path.endswith("churn_20250630_sms_unowned.csv")
    assert not list((exporting.reports_dir / "_staging").iterdir())


def test_a_run_failing_outside_a_cell_is_discarded_like_a_failed_cell(exporting, monkeypatch):
    import errno

    import crm_ml.reporting

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(crm_ml.reporting, "_write_html", full_disk)
    with pytest.raises(
        ReportFailedError,
        match=r"failed while rendering its HTML page: OSError: \[Errno 28\] No space left on "
        r"device\. No report of that date was published before, and none is now; the notebook "
        r"as far as it ran is .*_failed.*"
        r"1 export\(s\) it logged are marked 'not published'",
    ):
        run_report(exporting, "exports", as_of=DAY)
    (failed,) = (exporting.reports_dir / "_failed").glob("*.ipynb")
    (path,) = _logged_paths(exporting)
    assert path.startswith(f"not published (report failed, see {failed}): ")
    assert not list((exporting.reports_dir / "_staging").iterdir())
    assert not (exporting.reports_dir / "2025-06-30").exists()


def test_a_publish_whose_log_cannot_commit_says_the_lists_are_out(exporting, monkeypatch):
    import crm_ml.reporting
    from crm_ml.errors import StoreError

    moving = crm_ml.reporting._publish

    def moved_then_lost(*args):
        moving(*args)
        raise StoreError("the connection is lost")

    monkeypatch.setattr(crm_ml.reporting, "_publish", moved_then_lost)
    with pytest.raises(
        ReportFailedError,
        match=r"was published to .*, but export_log could not record it \(the connection is lost\)",
    ):
        run_report(exporting, "exports", as_of=DAY)
    assert _published_files(exporting)  # the lists are out: staff may already use them


def _published_files(settings) -> list[str]:
    lists = settings.reports_dir / "2025-06-30" / "exports"
    return sorted(str(p) for p in lists.rglob("*") if p.is_file())


def test_a_rerun_marks_the_earlier_runs_exports_replaced(exporting):
    (path,) = run_report(exporting, "exports", as_of=DAY).files
    started = utc_now().replace(microsecond=0)
    report = run_report(exporting, "exports", as_of=DAY)
    logged = _logged_paths(exporting)
    assert len(logged) == 2  # the audit trail keeps both runs
    current = [p for p in logged if not p.startswith("replaced by")]
    assert current == _published_files(exporting) == [str(path)] == [str(f) for f in report.files]
    (old,) = set(logged) - set(current)
    match = re.fullmatch(r"replaced by a later run at (.{19}) UTC; archived in (\S+): (.*)", old)
    assert match and match[3] == str(path)
    assert (exporting.reports_dir / match[2] / path.name).exists()
    assert started <= datetime.datetime.fromisoformat(match[1]) <= utc_now()


def test_a_rerun_without_exports_still_marks_the_earlier_ones_replaced(exporting):
    (path,) = run_report(exporting, "exports", as_of=DAY).files
    assert (
        run_report(exporting, "exports", as_of=DAY, parameters={"tags": ["no-export"]}).files == ()
    )
    (old,) = _logged_paths(exporting)
    assert old.startswith("replaced by a later run at ") and old.endswith(f"/exports: {path}")
    assert _published_files(exporting) == []


def _log_export(settings, path) -> None:
    at = datetime.datetime(2025, 6, 29)
    with Store(settings.database_url).begin() as conn:
        conn.execute(
            insert(ExportLog).values(
                export_id=path.name,
                exported_at=at,
                actor="report",
                as_of=at,
                channel="sms",
                purpose="marketing",
                rows_kept=0,
                rows_excluded=0,
                unmasked=False,
                path=str(path),
            )
        )


def test_the_next_run_marks_exports_a_killed_run_left_in_staging(exporting):
    staging = exporting.reports_dir / "_staging"
    killed = staging / "2025-06-29-exports-0badc0de" / "exports" / "killed.csv"  # folder gone
    running = staging / "2025-06-30-other-12345678" / "other" / "running.csv"  # another run
    deleted = exporting.reports_dir / "2025-06-01" / "exports" / "deleted.csv"  # not staged
    running.parent.mkdir(parents=True)
    running.write_text("pseudo_id\n", encoding="utf-8")
    for path in (killed, running, deleted):
        _log_export(exporting, path)
    (published,) = run_report(exporting, "exports", as_of=DAY).files
    assert sorted(_logged_paths(exporting)) == sorted(
        [
            f"not published (run interrupted): {killed}",
            str(running),
            str(deleted),
            str(published),
        ]
    )


def _staged_run(staging, folder: str, pid: int, *, host: str | None = None):
    """A staging folder as a run leaves it: its owner file and one logged list."""
    run = staging / folder
    (run / "exports").mkdir(parents=True)
    owner = {"host": host or socket.gethostname(), "pid": pid}
    (run / "RUN").write_text(json.dumps(owner), encoding="utf-8")
    listed = run / "exports" / f"{folder}.csv"
    listed.write_text("pseudo_id\n", encoding="utf-8")
    return run, listed


def test_a_killed_runs_staging_folder_is_cleared_and_a_live_ones_kept(exporting):
    staging = exporting.reports_dir / "_staging"
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(ended.stdout)  # a process that has exited: like a run killed mid-way
    killed, killed_list = _staged_run(staging, "2025-06-29-exports-0badc0de", dead_pid)
    live, live_list = _staged_run(staging, "2025-06-30-other-12345678", os.getpid())
    remote, remote_list = _staged_run(
        staging, "2025-06-30-far-87654321", dead_pid, host="elsewhere"
    )
    for path in (killed_list, live_list, remote_list):
        _log_export(exporting, path)
    (published,) = run_report(exporting, "exports", as_of=DAY).files
    assert not killed.exists()  # its lists, possibly unmasked, do not linger
    assert live.exists() and remote.exists()  # a run still going, or one not seen from here
    assert sorted(_logged_paths(exporting)) == sorted(
        [
            f"not published (run interrupted): {killed_list}",
            str(live_list),
            str(remote_list),
            str(published),
        ]
    )


# A 1 x 1 transparent PNG.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def test_figures_get_their_section_as_alt_text(tmp_path, caplog):
    from bs4 import BeautifulSoup

    from crm_ml.reporting import _write_html

    nb = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_code_cell("fig")
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PIXEL})]
    section = "## 价值象限\n\n按客单价 × 购买次数分为四类（截至 `as_of`）。"
    nb.cells = [nbformat.v4.new_markdown_cell(section), figure]
    nbformat.write(nb, tmp_path / "r.ipynb")
    _write_html(tmp_path / "r.ipynb", tmp_path / "r.html")
    soup = BeautifulSoup((tmp_path / "r.html").read_text(encoding="utf-8"), "html.parser")
    (image,) = soup.select(".jp-RenderedImage img")
    assert image["alt"] == "Figure: 价值象限. 按客单价 × 购买次数分为四类（截至 as_of）。"
    assert "Alternative text is missing" not in caplog.text
