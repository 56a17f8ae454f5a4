"""MLflow is reached through crm_ml.models.tracking only: one place sets it up, mutes its noise."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "crm_ml"
TRACKING = PACKAGE / "models" / "tracking.py"


def _imports_mlflow(path: Path) -> list[int]:
    """Return the lines of ``path`` that import mlflow or one of its modules."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
            lines.append(node.lineno)
    return lines


def test_no_module_but_tracking_imports_mlflow():
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != TRACKING and (lines := _imports_mlflow(path))
    }
    assert found == {}
    assert _imports_mlflow(TRACKING)  # the check reads imports where they are
