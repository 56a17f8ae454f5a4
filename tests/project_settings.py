"""Throwaway projects: settings with their own store, registry and reports; a folder the CLI finds.

Kept out of ``conftest.py`` so tests can import it by a name no other module has.
"""

from __future__ import annotations

import logging
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


def cli_project(root: Path, monkeypatch: Any) -> Path:
    """Make ``root`` a project the CLI finds from its working directory, free of outside settings.

    The environment's ``CRM_ML_*`` and ``MLFLOW_TRACKING_URI`` would point the
    command line at another store or registry, so they are removed for the test.
    """
    (root / "crm_ml.toml").write_text("")
    monkeypatch.chdir(root)
    for var in ("CRM_ML_HOME", "CRM_ML_DATABASE_URL", "MLFLOW_TRACKING_URI", "CRM_ML_REPORTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return root


def import_files(root: Path, files: dict[str, str]) -> None:
    """Write each CSV (``customer.csv``: named after its table) into ``root`` and import it."""
    from crm_ml.cli import main

    for name, body in files.items():
        (root / name).write_text(body, encoding="utf-8")
        assert main(["import", name.removesuffix(".csv"), str(root / name)]) == 0


def import_one_order(root: Path) -> None:
    """Import customer C1 and one order of 2024-09-30 with the CLI, so 2024-10-01 can be scored."""
    import_files(
        root,
        {
            "customer.csv": "customer_id,created_at\nC1,2024-01-01\n",
            "orders.csv": "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
            "O1,C1,2024-09-30,offline,10,10\n",
        },
    )


def run_logged(argv: list[str]) -> int:
    """Run ``crm-ml`` as from a shell, where ``logging.basicConfig`` installs its handler.

    pytest's own handlers on the root logger make ``basicConfig`` do nothing, so
    they are set aside for the run and put back before the test ends.
    """
    from crm_ml.cli import main

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        return main(argv)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
