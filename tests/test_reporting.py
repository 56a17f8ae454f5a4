import datetime
import json

import nbformat
import pytest

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.reporting import ReportFailedError, list_reports, run_report

DAY = datetime.date(2025, 6, 30)
CODE = """
import os, pathlib
pathlib.Path(output_dir, "list.csv").write_text("id\\n1\\n", encoding="utf-8")
if fail:
    raise RuntimeError("boom at " + as_of)
print("ran for", as_of, "secret length", len(os.environ.get("CRM_ML_EXPORT_SECRET", "")))
"""


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('as_of = "2025-01-01"\noutput_dir = "."\nfail = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), params, nbformat.v4.new_code_cell(CODE)]
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
    assert "ran for 2025-06-30" in report.html.read_text(encoding="utf-8")
    assert not list((settings.reports_dir / "_staging").iterdir())
    assert list_reports(settings) == [("2025-06-30", "tiny", report.html)]


def test_the_kernel_talks_over_private_ipc_sockets_not_plain_tcp(settings, capfd):
    # The kernel inherits our stderr: over TCP it warns "Kernel is running over TCP without
    # encryption" at start-up.
    run_report(settings, "tiny", as_of=DAY)
    assert "without encryption" not in capfd.readouterr().err
    assert not list((settings.root / "notebooks").glob("kernel-ipc-*"))


def test_failure_keeps_last_good_report_and_saves_failed_notebook(settings):
    good = run_report(settings, "tiny", as_of=DAY)
    before = good.html.read_text(encoding="utf-8")
    with pytest.raises(ReportFailedError, match="RuntimeError: boom at 2025-06-30") as err:
        run_report(settings, "tiny", as_of=DAY, parameters={"fail": True})
    assert good.html.read_text(encoding="utf-8") == before
    failed = list((settings.reports_dir / "_failed").glob("2025-06-30-tiny-*.ipynb"))
    assert len(failed) == 1 and str(failed[0]) in str(err.value)


def test_rerun_replaces_the_same_date(settings, tmp_path):
    run_report(settings, "tiny", as_of=DAY)
    stale = settings.reports_dir / "2025-06-30" / "tiny" / "stale.csv"
    stale.write_text("old")
    run_report(settings, "tiny", as_of=DAY)
    assert not stale.exists()
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
