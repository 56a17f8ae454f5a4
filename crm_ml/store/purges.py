"""The record of retention purges (``retention_purge``), and the dates it closes.

:func:`crm_ml.retention.purge_before` records each purge. What was purged
stays purged: scores and reports dated before a purge's ``before`` are refused
(:func:`refuse_purged_date`), since they would make again what the retention
period removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, insert, inspect, select

from crm_ml.errors import ValidationError
from crm_ml.store.schema import RetentionPurge

_PURGE = cast(Table, RetentionPurge.__table__)


@dataclass(frozen=True)
class PurgeRecord:
    """A retention purge as ``retention_purge`` keeps it (times naive UTC)."""

    before: datetime
    purged_at: datetime
    actor: str
    reason: str


def record_purge(
    conn: Connection,
    at: datetime,
    before: datetime,
    deleted: Mapping[str, int],
    *,
    actor: str,
    reason: str,
) -> None:
    """Record a purge of data dated before ``before``, made ``at``, and what it deleted."""
    conn.execute(
        insert(_PURGE).values(
            purge_id=uuid.uuid4().hex,
            purged_at=at,
            actor=actor,
            reason=reason,
            before=before,
            deleted="; ".join(f"{what}: {n}" for what, n in deleted.items()),
        )
    )


def latest_purge(conn: Connection) -> PurgeRecord | None:
    """Return the purge that reached furthest (the latest ``before``), or None if none did.

    A store made before schema 5 has no ``retention_purge`` table: nothing was recorded.
    """
    if not inspect(conn).has_table(_PURGE.name):
        return None
    row = conn.execute(
        select(_PURGE.c.before, _PURGE.c.purged_at, _PURGE.c.actor, _PURGE.c.reason)
        .order_by(_PURGE.c.before.desc(), _PURGE.c.purged_at.desc())
        .limit(1)
    ).first()
    return None if row is None else PurgeRecord(*row)


def refuse_purged_date(conn: Connection, as_of: datetime, *, what: str) -> None:
    """Refuse to make ``what`` as of a date before the furthest purge's ``before``.

    Raises
    ------
    ValidationError
        Naming the purge (when, by whom, why) and the first date allowed.
    """
    purge = latest_purge(conn)
    if purge is None or as_of >= purge.before:
        return
    raise ValidationError(
        f"Cannot make {what} as of {as_of:%Y-%m-%d}: a retention purge on "
        f"{purge.purged_at:%Y-%m-%d %H:%M} UTC by {purge.actor} ({purge.reason}) deleted "
        f"everything dated before {purge.before:%Y-%m-%d %H:%M}, and this would make it "
        f"again. Expected a date on or after {purge.before:%Y-%m-%d}."
    )
