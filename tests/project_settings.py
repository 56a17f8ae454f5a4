"""Settings of a throwaway project: its own DuckDB store, MLflow registry and reports folder.

Kept out of ``conftest.py`` so tests can import it by a name no other module has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_ml.config import Settings


def project_settings(root: Path, **overrides: Any) -> Settings:
    """Return settings of a project in ``root`` (a registry no other test writes to)."""
    values: dict[str, Any] = {
        "root": root,
        "database_url": f"duckdb:///{root / 'crm.duckdb'}",
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "reports_dir": root / "reports",
    }
    return Settings(**{**values, **overrides})
