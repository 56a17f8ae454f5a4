"""``crm-ml`` run by cron, its stderr a log file: no progress bars, dated log lines, short output.

At a terminal (``sys.stderr.isatty()``) the commands draw their bars and log
plain lines as before. Under ``capsys`` stderr is not a terminal.
"""

import os
import re
import subprocess
import sys

import nbformat
import pytest
from project_settings import cli_project, run_logged

from crm_ml.cli import main

DATED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
PRODUCTS = "product_id,category\nP1,宠物\nP2,beauty\n"
UNKNOWN_CATEGORY = "1 product(s) have a category that no affinity feature reads: '宠物' (1)."
LIST_WRITER = """
import pathlib
for n in range(files):
    pathlib.Path(output_dir, f"list_{n}.csv").write_text("id\\n1\\n", encoding="utf-8")
print("ran for", as_of)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    return root


@pytest.fixture
def small_store(project, capsys):
    """One customer with an order on 2024-02-01."""
    (project / "customer.csv").write_text("customer_id,created_at\nC1,2024-01-01\n")
    (project / "orders.csv").write_text(
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O1,C1,2024-02-01,offline,100,100\n"
    )
    for table in ("customer", "orders"):
        assert main(["import", table, f"{table}.csv"]) == 0
    capsys.readouterr()
    return project


def at_a_terminal(monkeypatch, answer=True):
    """Make the command's stderr say it is a terminal, as for a person typing the command.

    Called in the test itself: capsys gives each phase of a test its own stream.
    """
    monkeypatch.setattr(sys.stderr, "isatty", lambda: answer)


@pytest.mark.parametrize(
    ("argv", "bar"),
    [
        (["import", "orders", "more_orders.csv"], "import orders"),
        (["features", "build", "--as-of", "2024-03-01", "--out", "f.parquet"], "features"),
        (["export", "parquet", "exported"], "export parquet"),
    ],
)
def test_no_progress_bars_when_stderr_is_a_log_file(small_store, capsys, argv, bar):
    (small_store / "more_orders.csv").write_text(
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O2,C1,2024-02-02,offline,10,10\n"
    )
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert bar not in err and "\r" not in err


def test_progress_bars_stay_at_a_terminal(small_store, capsys, monkeypatch):
    at_a_terminal(monkeypatch)
    assert main(["features", "build", "--as-of", "2024-03-01", "--out", "f.parquet"]) == 0
    assert "features: 100%" in capsys.readouterr().err


@pytest.mark.parametrize("terminal", [False, True])
def test_the_demo_draws_its_bar_only_at_a_terminal(project, monkeypatch, terminal):
    import crm_ml.pipeline

    at_a_terminal(monkeypatch, terminal)
    asked = {}
    monkeypatch.setattr(crm_ml.pipeline, "run_demo", lambda settings, **how: asked.update(how))
    assert main(["demo", "--customers", "2000"]) == 0
    assert asked["progress"] is terminal


def test_log_lines_are_dated_when_stderr_is_a_log_file(project, capsys):
    (project / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    assert run_logged(["import", "product", "products.csv"]) == 0
    warning = f"WARNING crm_ml.store.loading: products.csv: {UNKNOWN_CATEGORY}"
    assert re.search(f"^{DATED} {re.escape(warning)}", capsys.readouterr().err, re.MULTILINE)


def test_log_lines_stay_plain_at_a_terminal(project, capsys, monkeypatch):
    at_a_terminal(monkeypatch)
    (project / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    assert run_logged(["import", "product", "products.csv"]) == 0
    warning = f"WARNING crm_ml.store.loading: products.csv: {UNKNOWN_CATEGORY}"
    assert re.search(f"^{re.escape(warning)}", capsys.readouterr().err, re.MULTILINE)


@pytest.mark.parametrize(("terminal", "verbose"), [(False, []), (True, []), (False, ["-v"])])
def test_an_import_warning_is_shown_once(project, capsys, monkeypatch, terminal, verbose):
    at_a_terminal(monkeypatch, terminal)
    (project / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    assert run_logged([*verbose, "import", "product", "products.csv"]) == 0
    shown = capsys.readouterr()
    assert (shown.out + shown.err).count(UNKNOWN_CATEGORY) == 1
    # The summary still says what was loaded.
    assert "product ← products.csv: 2 read, 2 inserted" in shown.out


def test_an_error_is_dated_when_stderr_is_a_log_file(project, capsys):
    assert main(["import", "orders", "missing.csv"]) == 2
    assert re.match(f"{DATED} crm-ml: error: ", capsys.readouterr().err)


def test_an_error_stays_plain_at_a_terminal(project, capsys, monkeypatch):
    at_a_terminal(monkeypatch)
    assert main(["import", "orders", "missing.csv"]) == 2
    assert capsys.readouterr().err.startswith("crm-ml: error: ")


def _report_notebook(project, name="tiny"):
    """``notebooks/<name>.ipynb`` writing ``files`` lists into its output folder."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('as_of = "2025-01-01"\noutput_dir = "."\nfiles = 3\n')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(LIST_WRITER)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (project / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, project / "notebooks" / f"{name}.ipynb")


def test_report_run_says_when_it_started_and_counts_the_files_it_published(project, capsys):
    _report_notebook(project)
    assert main(["report", "run", "tiny", "--as-of", "2025-06-30", "-p", "files", "120"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(f"{DATED} crm-ml report run tiny --as-of 2025-06-30: started", lines[0])
    folder = project / "reports" / "2025-06-30"
    assert lines[1:] == [
        "Report tiny as of 2025-06-30 published:",
        f"  {folder / 'tiny.html'}",
        f"  {folder / 'tiny.ipynb'}",
        f"  {folder / 'tiny'}/: 120 files",
    ]


def test_report_run_names_every_file_when_verbose(project, capsys):
    _report_notebook(project)
    assert main(["-v", "report", "run", "tiny", "--as-of", "2025-06-30"]) == 0
    out = capsys.readouterr().out
    folder = project / "reports" / "2025-06-30" / "tiny"
    assert out.endswith(
        f"  {folder / 'list_0.csv'}\n  {folder / 'list_1.csv'}\n  {folder / 'list_2.csv'}\n"
    )
    assert "3 files" not in out


def test_a_nights_block_in_the_cron_log_starts_with_its_start_line(project):
    # As in the README's crontab: `crm-ml report run … >> reports/cron.log 2>&1`. Output
    # to a file is block-buffered (cron sets no PYTHONUNBUFFERED), so an unflushed start
    # line would land after the run's warnings. A killed run's folder makes this run log one.
    _report_notebook(project)
    killed = project / "reports" / "_staging" / "2025-06-29-tiny-0badc0de"
    killed.mkdir(parents=True)
    os.utime(killed, (1_600_000_000, 1_600_000_000))  # no RUN file and old: left over
    log = project / "cron.log"
    with log.open("a") as out:
        argv = ["report", "run", "tiny", "--as-of", "2025-06-30"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        command = [sys.executable, "-m", "crm_ml.cli", *argv]
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    assert done.returncode == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(f"{DATED} crm-ml report run tiny --as-of 2025-06-30: started", lines[0])
    assert re.fullmatch(f"{DATED} WARNING crm_ml.reporting: Cleared 1 staging folder.*", lines[1])
    assert lines[2] == "Report tiny as of 2025-06-30 published:"
    assert "\r" not in log.read_text(encoding="utf-8")
