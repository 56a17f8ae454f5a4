"""What every ``crm-ml`` command group shares: the command signature, ``--as-of``, the store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, SchemaVersionError, ValidationError
from crm_ml.store import Store
from crm_ml.store.connection import store_file

Command = Callable[[argparse.Namespace, Settings], int]

#: How far past the last recorded order ``--as-of`` may go: a date beyond it is a typo,
#: since every customer would look lapsed (and tag history only moves forward in time).
MAX_DAYS_AFTER_DATA = 90


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


def _open_store(settings: Settings, *, create: bool = False) -> Store:
    """Return the settings' store; only ``crm-ml init`` (``create=True``) may make a new file.

    Opening a missing DuckDB or SQLite file would silently create an empty store
    (and its folder), so a mistyped ``CRM_ML_DATABASE_URL`` is refused here instead.
    """
    path = _store_file(settings.database_url)
    if create or path is None or path.exists():
        return Store(settings.database_url)
    if path == settings.data_dir / "crm.duckdb":
        advice = "Create it with `crm-ml init` (or build the demo store with `crm-ml demo`)."
    else:
        advice = (
            f"It comes from CRM_ML_DATABASE_URL={settings.database_url}: check it for a typo, "
            "or create a store there with `crm-ml init`."
        )
    raise SchemaVersionError(f"No store exists at {path}. {advice}")


def _data_span(store: Store) -> tuple[datetime | None, datetime | None]:
    """Return (first customer created or order placed, last order placed), naive UTC."""
    from sqlalchemy import func, select

    from crm_ml.store.schema import Customer, Order

    with store.connect() as conn:
        first_customer = conn.execute(select(func.min(Customer.created_at))).scalar()
        first_order, last_order = conn.execute(
            select(func.min(Order.ordered_at), func.max(Order.ordered_at))
        ).one()
    firsts = [t for t in (first_customer, first_order) if t is not None]
    return (min(firsts) if firsts else None), last_order


def _check_as_of(store: Store, as_of: datetime, command: str) -> None:
    """Refuse an ``--as-of`` before the store's data starts or well after its last order.

    Scoring or tagging such a date "works" and writes rows that mean nothing
    (everyone high risk, or an empty table), so the CLI stops first.
    """
    first, last = _data_span(store)
    if first is None or last is None:
        raise ValidationError(
            f"`crm-ml {command}` needs customers and orders in the store, and it has "
            f"{'none' if first is None else 'no orders'}. Load them with `crm-ml import`."
        )
    if as_of < first:
        raise ValidationError(
            f"--as-of {as_of:%Y-%m-%d} is before the store's data starts: its first customer "
            f"or order is from {first:%Y-%m-%d %H:%M} UTC. "
            f"Use a date from {_next_midnight(first):%Y-%m-%d} on."
        )
    latest = last + timedelta(days=MAX_DAYS_AFTER_DATA)
    if as_of > latest:
        raise ValidationError(
            f"--as-of {as_of:%Y-%m-%d} is {(as_of - last).days} days after the last recorded "
            f"order ({last:%Y-%m-%d %H:%M} UTC), so every customer would look lapsed. Expected "
            f"a date by {latest:%Y-%m-%d} ({MAX_DAYS_AFTER_DATA} days after it), e.g. "
            f"{_next_midnight(last):%Y-%m-%d}; if there are newer orders, load them first "
            "(`crm-ml import orders FILE`)."
        )


def _next_midnight(moment: datetime) -> datetime:
    """Return the first midnight at or after ``moment``: the first whole day it covers."""
    day = datetime.combine(moment.date(), datetime.min.time())
    return day if day == moment else day + timedelta(days=1)


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
