"""Upgrading a store made by an earlier crm_ml to this release's schema.

Each step takes a store from one version to the next: its schema changes,
then the values it moves into them. :func:`upgrade_store` runs the steps a
store needs in one transaction and records each version in ``schema_info``,
so a failed upgrade leaves the store as it was. Steps only add (tables,
columns with defaults) and move values into them: a store is never rebuilt,
so nothing in it is copied or lost on the way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, insert, select, text, update

from crm_ml import __version__
from crm_ml.errors import SchemaVersionError
from crm_ml.store.admin import store_version, utc_now
from crm_ml.store.connection import Store
from crm_ml.store.schema import (
    EXPORT_WRITTEN,
    SCHEMA_VERSION,
    ExportLog,
    SchemaInfo,
    SegmentChange,
    SegmentDefinition,
)

log = logging.getLogger(__name__)

#: ``changed_by`` of the history row an upgrade writes for each existing segment.
UPGRADE_ACTOR = "crm-ml upgrade"

# What version 1 wrote in front of an export's path when its file went away.
_V1_STATUS_PREFIX = re.compile(
    r"^(?P<status>not published \(.*\)|replaced by a later run at [^:]+:\d\d:\d\d UTC)"
    r": (?P<path>.*)$",
    re.DOTALL,
)


def _to_v2_schema(conn: Connection) -> None:
    """Segment history, and a column for the status of an export."""
    cast(Table, SegmentChange.__table__).create(conn, checkfirst=True)
    conn.execute(
        text(
            f"ALTER TABLE {ExportLog.__tablename__} "
            f"ADD COLUMN status VARCHAR(200) DEFAULT '{EXPORT_WRITTEN}'"
        )
    )


def _to_v2(conn: Connection) -> None:
    """Start each segment's history; move an export's status out of its path."""
    segments = conn.execute(select(SegmentDefinition)).all()
    now = utc_now()
    for seg in segments:
        conn.execute(
            insert(SegmentChange).values(
                segment_id=seg.segment_id,
                revision=1,
                changed_at=now,
                changed_by=UPGRADE_ACTOR,
                change=f"as found at the upgrade to schema 2; earlier changes were not recorded "
                f"(created {seg.created_at:%Y-%m-%d %H:%M} by {seg.created_by or 'unknown'})",
                version=seg.version,
                rule=seg.rule,
                kind=seg.kind,
                label=seg.label,
            )
        )
    rows = conn.execute(select(ExportLog.export_id, ExportLog.path)).all()
    for export_id, path in rows:
        found = _V1_STATUS_PREFIX.match(path)
        status, path = (found["status"], found["path"]) if found else (EXPORT_WRITTEN, path)
        conn.execute(
            update(ExportLog)
            .where(ExportLog.export_id == export_id)
            .values(status=status, path=path)
        )


def _to_v3_schema(conn: Connection) -> None:
    """Why an export was unmasked (or its archived file purged): a column, empty for old rows."""
    # Nullable: DuckDB cannot add a NOT NULL column to a table that has rows.
    conn.execute(text(f"ALTER TABLE {ExportLog.__tablename__} ADD COLUMN reason TEXT"))


def _nothing_to_move(conn: Connection) -> None:
    """Move nothing: the step only adds."""


@dataclass(frozen=True)
class Step:
    """What produces a version from the one before: schema changes, then values moved."""

    schema: Callable[[Connection], None]
    data: Callable[[Connection], None] = _nothing_to_move


#: The step that produces each version from the one before it.
STEPS: dict[int, Step] = {2: Step(_to_v2_schema, _to_v2), 3: Step(_to_v3_schema)}


def upgrade_store(store: Store) -> tuple[int, int]:
    """Bring a store made by an earlier crm_ml up to this release's schema version.

    All steps run in one transaction: if one fails, the store keeps its old
    version and contents. Running it on an up-to-date store changes nothing.

    Returns
    -------
    tuple of int
        The version before and after.

    Raises
    ------
    SchemaVersionError
        If the store has no crm_ml tables, or was made by a newer crm_ml.
    """
    with store.begin() as conn:
        before = store_version(conn)
        if before > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The store has schema version {before}, newer than this crm_ml's "
                f"{SCHEMA_VERSION}. Upgrade crm_ml (crm_ml {__version__} is installed)."
            )
        versions = range(before + 1, SCHEMA_VERSION + 1)
        # Every step's schema changes first: DuckDB cannot commit a transaction that
        # alters a table after updating it (v2 moves export statuses, v3 adds a column).
        for version in versions:
            STEPS[version].schema(conn)
        for version in versions:
            log.info("Upgrading the store to schema version %d", version)
            STEPS[version].data(conn)
            conn.execute(
                insert(SchemaInfo).values(
                    version=version, created_at=utc_now(), crm_ml_version=__version__
                )
            )
    return before, SCHEMA_VERSION
