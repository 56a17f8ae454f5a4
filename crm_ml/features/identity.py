"""Who the customers are at a date: merged ids resolved, the population as of a date.

Merges are identity corrections, applied at read time whatever their date: a
duplicate record found in 2025 was the same person in 2023. A merged record's
history therefore follows the surviving id, whether the loader re-keyed it or
not, and the merged-away id never appears in a feature frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_ml.errors import ValidationError
from crm_ml.features.backend import Snapshot, fetch, temporary_table
from crm_ml.features.spec import FeatureWindows

log = logging.getLogger(__name__)


def merge_pairs(con: Any) -> ir.Table:
    """One hop of ``merged_id -> surviving_id``.

    ``customer_merge`` is authoritative; ``customer.merged_into`` adds the
    merged customers it does not list.
    """
    merges = con.table("customer_merge")
    merges = merges.select(
        merged_id=merges.merged_id.cast("string"), surviving_id=merges.surviving_id.cast("string")
    )
    customer = con.table("customer")
    extra = customer.filter(
        (customer.status == "merged")
        & customer.merged_into.notnull()
        & ~customer.customer_id.isin(merges.merged_id)
    ).select(
        merged_id=customer.customer_id.cast("string"),
        surviving_id=customer.merged_into.cast("string"),
    )
    pairs = merges.union(extra)
    return pairs.filter(pairs.merged_id != pairs.surviving_id)


def chain_depth(pairs: pd.DataFrame) -> int:
    """Length of the longest merge chain (``a -> b -> c`` is 2).

    Raises
    ------
    ValidationError
        If the merges form a cycle (``a -> b -> a``), which has no survivor.
    """
    target = dict(zip(pairs["merged_id"], pairs["surviving_id"], strict=True))
    depth = 0
    for start in target:
        seen, current, hops = {start}, target[start], 1
        while current in target:
            if current in seen:
                raise ValidationError(
                    f"Customer merges form a cycle through {start!r}: no customer survives. "
                    "Fix customer_merge / customer.merged_into so each chain ends at an active id."
                )
            seen.add(current)
            current, hops = target[current], hops + 1
        depth = max(depth, hops)
    return depth


def _hop(resolved: ir.Table, pairs: ir.Table) -> ir.Table:
    step = pairs.select(next_merged=pairs.merged_id, next_surviving=pairs.surviving_id)
    joined = resolved.left_join(step, resolved.surviving_id == step.next_merged)
    return joined.select(
        merged_id=joined.merged_id,
        surviving_id=ibis.coalesce(joined.next_surviving, joined.surviving_id),
    )


def resolve_id_map(con: Any) -> ir.Table | None:
    """``merged_id -> final surviving_id`` with chains followed, or None if nothing was merged."""
    pairs = merge_pairs(con)
    found = fetch(pairs)
    if found.empty:
        return None
    depth = chain_depth(found)
    resolved = pairs
    for _ in range(depth - 1):
        resolved = _hop(resolved, pairs)
    log.debug("Resolved %d merged ids (longest chain %d)", len(found), depth)
    return resolved


def population(snap: Snapshot) -> ir.Table:
    """Select the customers that exist at ``as_of``: active, not merged away, created before it.

    A survivor's creation time is the earliest of its own and its merged records'.

    Returns
    -------
    ibis Table
        ``customer_id`` and ``created_at`` (and a position while a build has
        numbered it).
    """
    if snap.people is not None:
        return snap.people
    raw = snap.raw("customer")
    active = raw.filter(raw.status == "active")
    if snap.id_map is not None:
        active = active.filter(~active.customer_id.isin(snap.id_map.merged_id))
    everyone = snap.table("customer")
    created = everyone.group_by("customer_id").agg(created_at=everyone.created_at.min())
    joined = active.select("customer_id").inner_join(created, "customer_id")
    return joined.filter(joined.created_at < snap.as_of)


@contextmanager
def open_snapshot(
    con: Any, dialect: str, as_of: datetime, windows: FeatureWindows
) -> Iterator[Snapshot]:
    """Yield a :class:`Snapshot` on an Ibis connection, merged ids resolved, for the block."""
    id_map = resolve_id_map(con)
    if id_map is None:
        yield Snapshot(con=con, dialect=dialect, as_of=as_of, windows=windows)
        return
    with temporary_table(con, id_map, "merge_map") as table:
        yield Snapshot(con=con, dialect=dialect, as_of=as_of, windows=windows, id_map=table)
