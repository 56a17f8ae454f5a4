"""Segment members: evaluation, snapshots per ``as_of``, size over time, overlaps.

A snapshot never holds a customer erased on request (``crm-ml customers erase``):
their orders keep them in the features, so a rule may match them, but nothing
more is recorded about the person; the log says how many were left out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import pandas as pd
from sqlalchemy import Connection, Table, func, insert, select

from crm_ml.errors import NotFoundError
from crm_ml.features.build import check_features_date
from crm_ml.rules import as_timestamp, evaluate_rule
from crm_ml.segments.definitions import (
    Segment,
    check_segment_rule,
    load_segment,
    require_segments,
    segment_vocabulary,
)
from crm_ml.store.admin import utc_now
from crm_ml.store.bulk import insert_frame
from crm_ml.store.connection import Store
from crm_ml.store.erased import erased_note, is_erased, lock_out_erasures
from crm_ml.store.schema import ExportLog, SegmentMember, SegmentSnapshot

log = logging.getLogger(__name__)

_TABLE = cast(Table, SegmentMember.__table__)
_SNAPSHOTS = cast(Table, SegmentSnapshot.__table__)
_MEMBER_KINDS = {"segment_id": "text", "as_of": "timestamp", "customer_id": "text"}


def _segment(store: Store, segment: Segment | str) -> Segment:
    return load_segment(store, segment) if isinstance(segment, str) else segment


def evaluate_segment(
    store: Store, segment: Segment | str, features: pd.DataFrame, as_of: Any
) -> pd.Index:
    """Return who matches a segment's rule at ``as_of``, without writing.

    Raises
    ------
    ValidationError
        If ``features`` were built for another date (``customer_features`` records it).

    Returns
    -------
    pandas.Index
        Sorted ``customer_id`` values.
    """
    check_features_date(features, as_timestamp(as_of), use="evaluated")
    seg = _segment(store, segment)
    rule = check_segment_rule(store, seg, segment_vocabulary(store, features))
    return evaluate_rule(store, rule, features, as_of)


def _snapshot_dates(conn: Connection, segment_id: str) -> list[datetime]:
    return list(
        conn.execute(
            select(SegmentSnapshot.as_of)
            .where(SegmentSnapshot.segment_id == segment_id)
            .order_by(SegmentSnapshot.as_of)
        ).scalars()
    )


def _read_members(conn: Connection, segment_id: str, on: datetime) -> pd.Index:
    ids = conn.execute(
        select(SegmentMember.customer_id).where(
            SegmentMember.segment_id == segment_id, SegmentMember.as_of == on
        )
    ).scalars()
    return pd.Index(sorted(ids), dtype="str", name="customer_id")


def snapshot_segment(
    store: Store, segment: Segment | str, features: pd.DataFrame, as_of: Any
) -> pd.Index:
    """Store the segment's members as of ``as_of`` (replacing a snapshot of the same date).

    A ``static`` segment keeps the members of its first snapshot; a
    ``dynamic`` one is evaluated again. Either way, customers erased on
    request are left out.

    Returns
    -------
    pandas.Index
        The members stored, sorted.
    """
    seg, on = _segment(store, segment), as_timestamp(as_of)
    with store.connect() as conn:
        earlier = [d for d in _snapshot_dates(conn, seg.name) if d < on]
        frozen = (
            _read_members(conn, seg.name, earlier[0]) if seg.kind == "static" and earlier else None
        )
    members = frozen if frozen is not None else evaluate_segment(store, seg, features, on)
    with store.begin() as conn:
        members = _without_erased(conn, members, seg.name)
        rows = pd.DataFrame({"segment_id": seg.name, "as_of": on, "customer_id": members})
        for table in (_TABLE, _SNAPSHOTS):
            conn.execute(table.delete().where(table.c.segment_id == seg.name, table.c.as_of == on))
        conn.execute(
            insert(SegmentSnapshot).values(
                segment_id=seg.name,
                as_of=on,
                rule_version=seg.version,
                members=len(members),
                taken_at=utc_now(),
            )
        )
        insert_frame(conn, _TABLE.name, rows, _MEMBER_KINDS)
    log.info("Segment %s v%d at %s: %d members", seg.name, seg.version, on, len(members))
    return members


def _without_erased(conn: Connection, members: pd.Index, segment: str) -> pd.Index:
    """Leave customers erased on request out of a snapshot's members, logging how many.

    Read in the writing transaction, so a person erased while the segment was
    evaluated is left out too (:func:`~crm_ml.store.erased.lock_out_erasures`).
    """
    erased = is_erased(members, lock_out_erasures(conn))
    if erased.any():
        log.info("%s", erased_note(int(erased.sum()), f"the snapshot of segment {segment}"))
    return members[~erased]


def snapshot_rule_version(store: Store, segment: str, as_of: Any) -> int | None:
    """Return the rule version the segment's snapshot at ``as_of`` was taken with (None: none)."""
    with store.connect() as conn:
        found = conn.execute(
            select(SegmentSnapshot.rule_version).where(
                SegmentSnapshot.segment_id == segment,
                SegmentSnapshot.as_of == as_timestamp(as_of),
            )
        ).scalar()
    return None if found is None else int(found)


def segment_members(store: Store, segment: str, as_of: Any) -> pd.Index:
    """Return the members of a stored snapshot.

    Raises
    ------
    NotFoundError
        If there is no segment by that name (with the nearest names), or no
        snapshot at ``as_of`` (the message lists the dates there are).
    """
    on = as_timestamp(as_of)
    with store.connect() as conn:
        require_segments(conn, [segment])
        dates = _snapshot_dates(conn, segment)
        if on not in dates:
            shown = ", ".join(f"{d:%Y-%m-%d}" for d in dates[-5:]) or "none"
            raise NotFoundError(
                f"Segment {segment!r} has no snapshot at {on:%Y-%m-%d} (latest: {shown}). "
                f"Take one first: `crm-ml segment show {segment} --as-of {on:%Y-%m-%d}` "
                f"(snapshot_segment(store, {segment!r}, features, as_of) in Python)."
            )
        return _read_members(conn, segment, on)


def segment_usage(store: Store, segment: str) -> str:
    """Describe, for a message, who exported a segment's lists and when it was last snapshotted.

    Returns
    -------
    str
        E.g. ``lists exported by segment_lists report, ana; snapshots at 3 dates,
        the last 2026-01-01`` (``at 1 date, 2026-01-01``); ``never exported or
        snapshotted`` when neither.
    """
    last = func.max(ExportLog.exported_at)
    with store.connect() as conn:
        actors = conn.execute(
            select(ExportLog.actor)
            .where(ExportLog.segment_id == segment)
            .group_by(ExportLog.actor)
            .order_by(last.desc())
        ).scalars()
        exported_by = list(actors)
        dates = _snapshot_dates(conn, segment)
    parts = [f"lists exported by {', '.join(exported_by)}"] if exported_by else []
    if dates:
        count = f"{len(dates)} dates, the last" if len(dates) > 1 else "1 date,"
        parts.append(f"snapshots at {count} {dates[-1]:%Y-%m-%d}")
    return "; ".join(parts) or "never exported or snapshotted"


def segment_sizes(store: Store, segments: Iterable[str] | None = None) -> pd.DataFrame:
    """Return the size of each segment at each snapshot date.

    Parameters
    ----------
    store : Store
    segments : iterable of str, optional
        Stored segments (all snapshotted ones by default).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``as_of``; one integer column per segment (0 where no snapshot).

    Raises
    ------
    NotFoundError
        If a named segment is not stored, with the nearest names.
    """
    query = select(SegmentSnapshot.segment_id, SegmentSnapshot.as_of, SegmentSnapshot.members)
    with store.connect() as conn:
        wanted = None if segments is None else require_segments(conn, segments)
        if wanted is not None:
            query = query.where(SegmentSnapshot.segment_id.in_(wanted))
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["segment", "as_of", "members"])
    table = frame.pivot_table(
        index="as_of", columns="segment", values="members", aggfunc="sum", fill_value=0
    )
    if wanted is not None:
        table = table.reindex(columns=wanted, fill_value=0)
    table.columns.name = None
    return table.astype("int64").sort_index()


def latest_snapshots(store: Store) -> dict[str, tuple[datetime, int]]:
    """Return each snapshotted segment's latest snapshot: its date and member count."""
    latest = (
        select(SegmentSnapshot.segment_id, func.max(SegmentSnapshot.as_of).label("as_of"))
        .group_by(SegmentSnapshot.segment_id)
        .subquery()
    )
    query = select(SegmentSnapshot.segment_id, SegmentSnapshot.as_of, SegmentSnapshot.members).join(
        latest,
        (SegmentSnapshot.segment_id == latest.c.segment_id)
        & (SegmentSnapshot.as_of == latest.c.as_of),
    )
    with store.connect() as conn:
        return {name: (as_of, int(members)) for name, as_of, members in conn.execute(query)}


def overlap_matrix(
    store: Store, segments: Iterable[str], as_of: Any, *, share: bool = False
) -> pd.DataFrame:
    """Count customers in both of each pair of segments at a snapshot date.

    Parameters
    ----------
    share : bool
        Divide each row by its segment's size: the share of the row segment
        that is also in the column segment.

    Returns
    -------
    pandas.DataFrame
        Segments by segments; the diagonal holds each segment's size.

    Raises
    ------
    NotFoundError
        For an unknown segment (with the nearest names) or one with no snapshot at ``as_of``.
    """
    names = list(dict.fromkeys(segments))
    sets = {name: set(segment_members(store, name, as_of)) for name in names}
    counts = pd.DataFrame(
        [[len(sets[a] & sets[b]) for b in names] for a in names],
        index=names,
        columns=names,
        dtype="int64",
    )
    counts.index.name = "segment"
    if not share:
        return counts
    sizes = pd.Series({n: len(sets[n]) for n in names}, dtype="float64").replace(0, float("nan"))
    return counts.div(sizes, axis=0)
