"""What every ``crm-ml`` command group shares: the command signature, ``--as-of``, the store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

from crm_ml.config import Settings
from crm_ml.store import Store

Command = Callable[[argparse.Namespace, Settings], int]


def _as_of(text: str) -> datetime:
    """Parse a ``--as-of`` date (``YYYY-MM-DD`` or an ISO timestamp)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2025-06-30 or 2025-06-30T00:00:00, got {text!r}"
        ) from exc


def _open_store(settings: Settings) -> Store:
    return Store(settings.database_url)
