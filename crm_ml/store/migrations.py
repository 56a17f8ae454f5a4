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
from datetime import datetime
from typing import cast

import pandas as pd
from sqlalchemy import Connection, Table, insert, select, text, update

from crm_ml import __version__
from crm_ml.errors import SchemaVersionError
from crm_ml.store.admin import store_version, unknown_customers, utc_now
from crm_ml.store.connection import Store
from crm_ml.store.erased import ERASURE_CHANGE_PREFIX
from crm_ml.store.normalizers import category_codes
from crm_ml.store.schema import (
    EXPORT_WRITTEN,
    SCHEMA_VERSION,
    CustomerChange,
    ErasedCustomer,
    ExportLog,
    Product,
    RetentionPurge,
    SchemaInfo,
    SegmentChange,
    SegmentDefinition,
    StoreExport,
)

log = logging.getLogger(__name__)

#: ``changed_by`` of the history row an upgrade writes for each existing segment.
UPGRADE_ACTOR = "crm-ml upgrade"

# What an erasure's audit row says (``new_value``): ``erased C1, C2: <reason>``.
_ERASED_RECORDS = re.compile(r"^erased (?P<ids>.+?): ", re.DOTALL)

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


def _to_v4_schema(conn: Connection) -> None:
    """Add a table to mark each customer record erased on request."""
    cast(Table, ErasedCustomer.__table__).create(conn, checkfirst=True)


def _to_v5_schema(conn: Connection) -> None:
    """Add tables to record each export of the store and each retention purge."""
    cast(Table, StoreExport.__table__).create(conn, checkfirst=True)
    cast(Table, RetentionPurge.__table__).create(conn, checkfirst=True)


def _erased_records(new_value: str | None) -> list[str]:
    """Return the records an erasure's audit row lists (``erased C1, C2: <reason>``)."""
    found = _ERASED_RECORDS.match(new_value or "")
    return found["ids"].split(", ") if found else []


def _mark_erasures(conn: Connection) -> None:
    """Mark the records of every erasure done so far, from its audit row in ``customer_change``.

    The row's own customer always counts; the others are the records its value lists,
    where they are customers of the store (a later erasure of the same person blanks
    the value, but its own row lists them again). A record erased twice is marked
    with the first erasure.
    """
    audit = conn.execute(
        select(
            CustomerChange.change_id,
            CustomerChange.customer_id,
            CustomerChange.new_value,
            CustomerChange.changed_at,
        )
        .where(CustomerChange.change_id.like(f"{ERASURE_CHANGE_PREFIX}%"))
        .order_by(CustomerChange.changed_at, CustomerChange.change_id)
    ).all()
    marks: dict[str, tuple[str, datetime]] = {}
    for change_id, customer_id, new_value, changed_at in audit:
        for record in (customer_id, *_erased_records(new_value)):
            marks.setdefault(record, (change_id, changed_at))
    unknown = set(unknown_customers(conn, list(marks)))
    rows = [
        {"customer_id": record, "erased_at": at, "change_id": change_id}
        for record, (change_id, at) in marks.items()
        if record not in unknown
    ]
    if rows:
        conn.execute(insert(ErasedCustomer), rows)
    log.info("Marked %d erased customer record(s) from %d erasure(s)", len(rows), len(audit))


def _category_codes(conn: Connection) -> None:
    """Store each product category's code where an earlier import kept its Chinese name.

    Imports have stored 美妆 as ``beauty`` since the affinity features read codes; a
    product imported before kept 美妆, which no ``affinity_*`` feature or ``likes_*``
    tag reads, so they were silently 0 for everyone until the file was imported again.
    """
    stored = pd.Series(conn.execute(select(Product.category).distinct()).scalars().all())
    codes = category_codes(stored.astype("str"))
    changed = 0
    for name, code in zip(stored, codes, strict=True):
        if pd.notna(code) and code != name:
            update_rows = update(Product).where(Product.category == name).values(category=code)
            changed += conn.execute(update_rows).rowcount
            log.info("Product category %r is now stored as %r", name, code)
    if changed:
        log.warning(
            "%d product(s) had a category name that the affinity features do not read; "
            "they now hold its code (美妆 → beauty). Rebuild features built before.",
            changed,
        )


def _to_v4(conn: Connection) -> None:
    """Mark every erasure done so far; store category codes where names were kept."""
    _mark_erasures(conn)
    _category_codes(conn)


def _nothing_to_move(conn: Connection) -> None:
    """Move nothing: the step only adds."""


@dataclass(frozen=True)
class Step:
    """What produces a version from the one before: schema changes, then values moved."""

    schema: Callable[[Connection], None]
    data: Callable[[Connection], None] = _nothing_to_move


#: The step that produces each version from the one before it.
STEPS: dict[int, Step] = {
    2: Step(_to_v2_schema, _to_v2),
    3: Step(_to_v3_schema),
    4: Step(_to_v4_schema, _to_v4),
    5: Step(_to_v5_schema),
}


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
