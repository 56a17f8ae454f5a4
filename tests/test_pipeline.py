"""The main job end to end: `crm-ml demo` on a small retailer, as `make demo` runs it.

Every other test covers one step; this one checks that the steps still fit
together (the README's first command) and that the demo leaves what its
reports promise: a quarter-old scoring run that `models check` can measure.
"""

from __future__ import annotations

import codecs
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from project_settings import cli_project

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.models.monitoring import check_models
from crm_ml.store import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A project where `crm-ml demo --customers 1000` ran; its root and what it printed."""
    root = tmp_path_factory.mktemp("demo_project")
    (root / "notebooks").symlink_to(REPO / "notebooks", target_is_directory=True)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, redirect_stdout(printed):
        cli_project(root, monkeypatch)
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        monkeypatch.delenv("CRM_ML_EXPORT_SECRET", raising=False)  # the demo makes a throwaway one
        assert main(["demo", "--customers", "1000"]) == 0
    return root, printed.getvalue()


def test_the_demo_publishes_both_reports_and_owner_lists(demo: tuple[Path, str]) -> None:
    root, printed = demo
    folder = root / "reports" / "2026-01-01"
    assert f"Reports: {folder}" in printed
    assert {p.name for p in folder.glob("*.html")} == {
        "retention_analysis.html",
        "segment_lists.html",
    }
    lists = sorted(folder.rglob("*.csv"))
    assert lists and all(p.read_bytes().startswith(codecs.BOM_UTF8) for p in lists)
    assert any("_owner-" in p.name for p in lists)
    # The lists' ids are made with the demo's kept key: the last lines say how to use it.
    assert "export CRM_ML_EXPORT_SECRET=$(cat data/demo_export_secret)" in printed.splitlines()[-1]


def test_the_demo_leaves_a_closed_scoring_run_for_the_models_check(demo: tuple[Path, str]) -> None:
    root, printed = demo
    assert "[3/9] Last quarter's models: trained on data to 2025-10-03" in printed
    settings = Settings.from_env(environ={}, cwd=root)  # the project's own, as the demo's
    store = Store(settings.database_url)
    try:
        checks = check_models(store, settings=settings, progress=False)
    finally:
        store.dispose()

    for model in ("crm-churn", "crm-propensity"):
        # Last quarter's run is out of sample (its version learned nothing after it) and closed.
        runs = checks.loc[model]
        assert runs.index.strftime("%Y-%m-%d").tolist() == ["2025-10-03", "2026-01-01"]
        assert runs["status"].tolist() == ["measured", "open"]
        assert runs["model_version"].iloc[0] == "1"
        assert 0.6 < runs["roc_auc"].iloc[0] <= 1.0
