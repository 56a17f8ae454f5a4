"""Every notebook in notebooks/ runs under papermill and publishes through run_report.

One tiny demo store (a couple of hundred customers, with churn scores) is
built for the module; each notebook then runs in a fresh ``python3`` kernel
that inherits ``CRM_ML_HOME``, ``CRM_ML_DATABASE_URL``, ``MLFLOW_TRACKING_URI``
and ``CRM_ML_EXPORT_SECRET`` from the environment, exactly as
``crm-ml report run`` would run it.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import insert, select

from crm_ml.config import Settings
from crm_ml.reporting import run_report
from crm_ml.store import Store, init_store
from crm_ml.store.schema import Customer, Order, Score

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
AS_OF = date(2024, 10, 1)
SECRET = "CANARY-notebook-secret-5e3f9a7c"
DURATIONS: dict[str, float] = {}


def _churn_scores(store: Store) -> None:
    """Deterministic churn scores with reasons for every customer, as of the report date."""
    with store.connect() as conn:
        ids = sorted(conn.execute(select(Customer.customer_id)).scalars())
    reasons = json.dumps([{"text": "no purchase lately", "actionable": False, "contribution": 0.4}])
    rows = [
        {
            "model_name": "crm-churn",
            "as_of": datetime(2024, 10, 1),
            "customer_id": cid,
            "model_version": "fixture",
            "probability": (i * 37 % 100) / 100,
            "band": "high" if i * 37 % 100 >= 60 else "low",
            "reasons": reasons,
            "scored_at": datetime(2024, 10, 1),
        }
        for i, cid in enumerate(ids)
    ]
    with store.begin() as conn:
        conn.execute(insert(Score), rows)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A project folder with the repo's notebooks and a tiny demo store, set in the environment."""
    from crm_ml.demo import generate

    root = tmp_path_factory.mktemp("project")
    (root / "notebooks").symlink_to(NOTEBOOKS, target_is_directory=True)
    (root / "data").mkdir()
    (root / "mlruns").mkdir()
    env = {
        "CRM_ML_HOME": str(root),
        "CRM_ML_DATABASE_URL": f"duckdb:///{root / 'data' / 'crm.duckdb'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CRM_ML_EXPORT_SECRET": SECRET,
    }
    store = Store(env["CRM_ML_DATABASE_URL"], create=True)
    init_store(store)
    generate(
        store,
        n_customers=200,
        start="2023-01-01",
        end="2024-12-31",
        seed=11,
        truth_path=root / "data" / "truth.parquet",
    )
    _churn_scores(store)
    store.dispose()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield Settings.from_env(environ=env)
    print("\nnotebook run times:", {k: f"{v:.1f}s" for k, v in DURATIONS.items()})


def _best_customer(settings: Settings) -> str:
    store = Store(settings.database_url)
    with store.connect() as conn:
        ids = conn.execute(select(Order.customer_id).order_by(Order.ordered_at)).scalars().all()
    store.dispose()
    return str(ids[len(ids) // 2])


def _run(settings: Settings, name: str, **parameters: object):
    started = time.perf_counter()
    report = run_report(settings, name, as_of=AS_OF, parameters=parameters)
    DURATIONS[name] = time.perf_counter() - started
    html = report.html.read_text(encoding="utf-8")
    assert SECRET not in html
    assert SECRET not in report.notebook.read_text(encoding="utf-8")
    assert "data:image/png" in html  # static figures, readable offline
    return report, html


def test_every_notebook_is_tested():
    tested = {"retention_analysis", "segment_lists", "segment_explorer", "customer_360"}
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == tested | {"model_training"}


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_are_thin_and_parameterised(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0] is nb.cells[1]
    for node in ast.parse(params[0].source).body:
        assert isinstance(node, ast.Assign)
        ast.literal_eval(node.value)  # literals only: papermill does not recompute derived values
    names = {node.targets[0].id for node in ast.parse(params[0].source).body}  # type: ignore[attr-defined]
    assert {"as_of", "output_dir"} <= names
    setup = nb.cells[2].source
    assert "Settings.from_env()" in setup and "Store(settings.database_url)" in setup
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    steps = [c for c in nb.cells[3:] if c.cell_type == "code"]
    assert all(len(c.source.splitlines()) <= 15 for c in steps)
    raw = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert all("id" in c for c in raw)  # nbformat 4.5 needs them; runs would warn otherwise


def test_retention_analysis(settings):
    report, html = _run(settings, "retention_analysis")
    for heading in ("Acquisition cohorts", "Tier movement", "Revenue at risk", "Churn-risk list"):
        assert heading in html
    lists = [p for p in report.files if p.suffix == ".csv"]
    assert lists and all(p.name.startswith("retention_churn_risk_20241001_sms_") for p in lists)
    text = "".join(p.read_text(encoding="utf-8-sig") for p in lists)
    assert "流失原因" in text and "no purchase lately" in text  # zh headers, the default
    assert "churn_reasons" not in text
    assert "流失风险金额" in html  # the preview of the list shows the files' headers


def test_segment_lists(settings):
    report, html = _run(settings, "segment_lists")
    assert "Segment sizes" in html and "Portraits" in html
    # Scores are made current before tags and lists read them: churn is scored as of
    # the date already; propensity has no registered model, so it is said and skipped.
    assert "already scored as of this date" in html
    assert "no champion: has no scores" in html
    stems = {p.name.split("_20241001_")[0] for p in report.files}
    assert stems == {"churn_winback", "high_value_at_risk", "points_reminder", "reactivation"}


def test_segment_explorer(settings):
    _, html = _run(settings, "segment_explorer")
    assert "recency_days &gt; 90 and orders_lifetime &gt;= 2" in html  # the static summary


def test_customer_360(settings):
    _, html = _run(settings, "customer_360", customer_id=_best_customer(settings))
    assert "Customer 360" in html and "points_balance" in html


@pytest.mark.slow
def test_model_training_trains_registers_and_scores(settings):
    _, html = _run(settings, "model_training", n_snapshots=3)
    assert "roc_auc" in html and "champion" in html
    _assert_notebook_attached(settings, "crm-churn")
    if "has no champion yet, so nothing was scored" in html:
        # 200 customers: a baseline beats the model, so no version may be scored.
        assert "not made champion" in html
        return
    store = Store(settings.database_url)
    with store.connect() as conn:
        versions = set(
            conn.execute(select(Score.model_version).where(Score.model_name == "crm-churn"))
            .scalars()
            .all()
        )
    store.dispose()
    assert versions and "fixture" not in versions  # the champion rescored as_of


def _assert_notebook_attached(settings: Settings, name: str) -> None:
    """The training run behind each version holds the executed notebook and its page."""
    from mlflow import MlflowClient

    from crm_ml.models.tracking import list_versions

    client = MlflowClient(settings.mlflow_tracking_uri)
    runs = list(list_versions(name, settings)["run_id"])
    assert runs
    for run_id in runs:
        files = {artifact.path for artifact in client.list_artifacts(run_id, "report")}
        assert files == {"report/model_training.ipynb", "report/model_training.html"}
        assert client.get_run(run_id).data.tags["crm_ml_report"] == (
            "model_training as of 2024-10-01"
        )
