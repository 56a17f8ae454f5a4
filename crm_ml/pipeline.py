"""The main job: demo store → features → models → scores → tags → segments → reports.

:func:`run_demo` is what ``make demo`` runs on the embedded default store.
Each step is one call into the package; the steps are here, in order, so the
whole flow can be read in one place.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import make_url

from crm_ml.config import Settings
from crm_ml.errors import ConfigError
from crm_ml.store import Store, init_store, table_counts

log = logging.getLogger(__name__)


def _fresh_embedded_store(settings: Settings) -> Store:
    """Re-create the store, but only if it is a file inside the project's data folder."""
    url = make_url(settings.database_url)
    path = Path(url.database or "")
    inside_data = (
        url.get_backend_name() in ("duckdb", "sqlite")
        and path.is_absolute()
        and (settings.data_dir.resolve() in path.resolve().parents)
    )
    if not inside_data:
        raise ConfigError(
            f"The demo re-creates its store and will not wipe {settings.database_url!r}, which is "
            f"not a file under {settings.data_dir}. Unset CRM_ML_DATABASE_URL, or pass --keep to "
            "add demo data to an empty store."
        )
    for suffix in ("", ".wal", ".truth.parquet"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Store(settings.database_url)


def run_demo(
    settings: Settings, *, n_customers: int = 20_000, seed: int = 7, fresh: bool = True
) -> Store:
    """Build the demo store on the embedded default and print what it holds.

    Parameters
    ----------
    settings : Settings
        Where the store, MLflow and reports live.
    n_customers : int
        Number of synthetic customers.
    seed : int
        Random seed; the same seed gives the same store.
    fresh : bool
        Re-create the store first (only allowed for a file under ``data/``).
    """
    store = _fresh_embedded_store(settings) if fresh else Store(settings.database_url)
    init_store(store)
    print(f"Store: {store!r}")
    counts = table_counts(store)
    print("Rows per table:")
    print(counts.to_string())
    return store
