"""The training notebook chooses its snapshots exactly as ``crm-ml train`` does (reviewer F2).

It anchored them at the midnight after the last order (one day later than the
CLI) and stacked 4 instead of 5, so its backtests were never the CLI's and a
notebook champion locked every CLI retrain out as "tested on older data".
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

import crm_ml.features.training as training_module
from crm_ml.cli import build_parser
from crm_ml.features.training import DEFAULT_GAP_DAYS, DEFAULT_SNAPSHOTS, resolve_snapshots

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "model_training.ipynb"
LAST_ORDER = datetime(2025, 12, 31, 15, 59)  # the demo's last order


def _notebook_code() -> tuple[dict[str, object], str]:
    """Return the notebook's parameters and the source of its other code cells."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {
        node.targets[0].id: ast.literal_eval(node.value)  # type: ignore[attr-defined]
        for node in ast.parse(params.source).body
    }
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and c is not params)
    return values, code


def test_notebook_and_cli_default_to_the_same_snapshots() -> None:
    values, _ = _notebook_code()
    cli = build_parser().parse_args(["train", "churn"])
    assert (values["n_snapshots"], values["gap_days"]) == (DEFAULT_SNAPSHOTS, DEFAULT_GAP_DAYS)
    assert (cli.snapshots, cli.gap_days) == (DEFAULT_SNAPSHOTS, DEFAULT_GAP_DAYS)


def test_the_notebook_lets_training_frame_choose_the_dates_from_a_count() -> None:
    _, code = _notebook_code()
    assert "snapshot_dates" not in code
    tree = ast.parse("\n".join(line for line in code.splitlines() if not line.startswith("%")))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "training_frame"
    ]
    assert len(calls) == 1
    args = [ast.unparse(a) for a in calls[0].args]
    assert args == ["store", "n_snapshots", "horizon", "gap_days"]
    assert {k.arg: ast.unparse(k.value) for k in calls[0].keywords}["until"] == "as_of"


@pytest.fixture
def demo_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_module, "last_order_at", lambda store: LAST_ORDER)


@pytest.mark.usefixtures("demo_end")
def test_the_report_date_after_the_data_gives_the_clis_dates() -> None:
    cli = resolve_snapshots(None, 5, 90, 90)
    assert cli[-1] == datetime(2025, 10, 2)
    # The notebook's default as_of: the midnight after the last order.
    assert resolve_snapshots(None, 5, 90, 90, until=datetime(2026, 1, 1)) == cli
    assert resolve_snapshots(None, 5, 90, 90, until="2025-12-31") == cli


@pytest.mark.usefixtures("demo_end")
def test_an_earlier_report_date_ends_the_labels_by_it() -> None:
    dates = resolve_snapshots(None, 3, 90, 90, until="2025-07-01")
    assert dates == [datetime(2024, 10, 4), datetime(2025, 1, 2), datetime(2025, 4, 2)]
