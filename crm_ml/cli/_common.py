"""What every ``crm-ml`` command group shares: the command signature, ``--as-of``, the store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, SchemaVersionError
from crm_ml.store import Store, check_store
from crm_ml.store.connection import store_file

Command = Callable[[argparse.Namespace, Settings], int]

#: How the CLI writes a time: log lines in a log file, the start of a report run.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _interactive() -> bool:
    """Whether a person watches the command at a terminal, rather than cron filling a log file.

    Only then are progress bars drawn and log lines left undated: in a file, a
    bar's frames pile up on one line joined by carriage returns, and a line
    without a time cannot be told from the other nights' lines.
    """
    return sys.stderr.isatty()


def _as_of(text: str) -> datetime:
    """Parse a ``--as-of`` date (``YYYY-MM-DD`` or an ISO timestamp)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2025-06-30 or 2025-06-30T00:00:00, got {text!r}"
        ) from exc


def _store_file(url: str) -> Path | None:
    """:func:`~crm_ml.store.connection.store_file`, naming the setting a CLI user can fix."""
    try:
        return store_file(url)
    except ConfigError as exc:
        raise ConfigError(
            f"Cannot read the store URL {url!r} (CRM_ML_DATABASE_URL); expected e.g. "
            "duckdb:////srv/crm/data/crm.duckdb or postgresql+psycopg://user@host/db."
        ) from exc


def _open_store(settings: Settings, *, create: bool = False, check: bool = True) -> Store:
    """Return the settings' store; only ``crm-ml init`` (``create=True``) may make a new file.

    A missing DuckDB or SQLite file is refused before anything runs. ``Store`` would
    refuse it too on connecting, but this message can say which setting to fix and
    that ``crm-ml demo`` builds the default store. So is a store of another schema
    version (``check``), with the advice to upgrade it or crm_ml, before any work.
    """
    path = _store_file(settings.database_url)
    if create or path is None or path.exists():
        store = Store(settings.database_url, create=create)
        if check and not create:
            with store.connect() as conn:
                check_store(conn)
        return store
    if path == settings.data_dir / "crm.duckdb":
        advice = "Create it with `crm-ml init` (or build the demo store with `crm-ml demo`)."
    else:
        advice = (
            f"It comes from CRM_ML_DATABASE_URL={settings.database_url}: check it for a typo, "
            "or create a store there with `crm-ml init`."
        )
    raise SchemaVersionError(f"No store exists at {path}. {advice}")


def _check_as_of(store: Store, as_of: datetime) -> None:
    """Refuse an ``--as-of`` before the store's data starts or well after its last order.

    Scoring or tagging such a date "works" and writes rows that mean nothing
    (everyone high risk, or an empty table), so the CLI stops first.
    """
    from crm_ml.features.span import check_as_of  # Ibis loads only for commands that need it

    check_as_of(store, as_of, what="--as-of")


def _add_commands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """Add a group's sub-commands; run without one, the group says which there are.

    argparse's own message for a missing sub-command names its internal ``dest``
    (``required: tags_command``), which means nothing to a user. ``main`` calls
    ``args.choose_command()`` when no command was chosen.
    """
    sub = parser.add_subparsers(dest=dest, metavar="COMMAND", title="commands")

    def choose_command() -> None:
        parser.error(f"choose a command: {', '.join(sub.choices)}")

    parser.set_defaults(func=None, choose_command=choose_command)
    return sub


def _add_export_log_audit(parser: argparse.ArgumentParser, *, verb: str, reason: str) -> None:
    """Add the required ``--actor`` and ``--reason`` of a command that marks export_log rows."""
    parser.add_argument("--actor", required=True, help=f"who {verb}, kept in export_log")
    parser.add_argument("--reason", required=True, help=f"why, e.g. {reason}; kept in export_log")
