"""The report notebooks opened in JupyterLab without the export secret run the analysis (13a, M7).

"Run All" stopped in the setup cell, before the first chart, when
``CRM_ML_EXPORT_SECRET`` was not set (as after ``make demo``, which used a
throwaway key). A notebook run outside ``crm-ml report run`` keeps its
parameters cell's ``output_dir`` (``lists``), as in JupyterLab; it is run here
with papermill from a scratch folder, on tests/test_notebooks.py's tiny store.
Everything before the list export must run, the setup cell saying how to write
the lists; the export itself either says the list was not written or stops
with the missing-secret error, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from test_notebooks import AS_OF, NOTEBOOKS
from test_notebooks import settings as settings  # the demo project, as a fixture

from crm_ml.config import Settings
from crm_ml.report_parameters import NO_SECRET_NOTE


def _run_interactively(name: str, folder: Path) -> nbformat.NotebookNode:
    """Run ``name`` as a JupyterLab user would: its ``output_dir`` default, from ``folder``."""
    import papermill as pm

    executed = folder / f"{name}.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(executed),
        parameters={"as_of": f"{AS_OF:%Y-%m-%d}"},
        kernel_name="python3",
        cwd=str(folder),
        progress_bar=False,
    )
    return nbformat.read(executed, as_version=4)


def _errors(cell: nbformat.NotebookNode) -> list[str]:
    outputs = cell.get("outputs", [])
    return [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize(("name", "figures"), [("retention_analysis", 6), ("segment_lists", 4)])
def test_without_the_secret_the_analysis_runs_and_no_list_is_written(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    figures: int,
) -> None:
    monkeypatch.delenv("CRM_ML_EXPORT_SECRET")  # the kernel inherits the environment
    cells = [c for c in _run_interactively(name, tmp_path).cells if c.cell_type == "code"]

    setup = next(c for c in cells if "Settings.from_env()" in c.source)
    assert "CRM_ML_EXPORT_SECRET is not set, so this session writes no list" in _text(setup)
    export = next(i for i, c in enumerate(cells) if "export_list(" in c.source)
    assert all(c.execution_count and not _errors(c) for c in cells[:export])
    shown = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(shown) >= figures
    # The run goes on to the end: the export cell says why it wrote nothing.
    assert all(c.execution_count and not _errors(c) for c in cells)
    assert NO_SECRET_NOTE in _text(cells[export])
    assert not any((tmp_path / "lists").glob("*.csv"))
