"""Moving a merged customer's history to the surviving customer.

Used by :func:`crm_ml.store.identity.merge_customers`. Changes are computed
first (reads only) and applied afterwards, so a dry run reports exactly what a
real run would write.

Which tables move, and what happens when the surviving customer already has a
row with the same key:

========================  =================================================================
table                     rule
========================  =================================================================
orders, behavior_event,   every row moves (their keys do not contain ``customer_id``)
points_ledger, coupon,
stored_value_ledger,
customer_change
customer_identity         one row per (kind, value); verified if either was; earliest
                          ``created_at``
custom_field_value        the most recently updated value wins (the survivor's on a tie)
consent                   both histories are kept, so the latest decision at any date wins;
                          two decisions with the *same* timestamp cannot be ordered, so the
                          more protective one is kept: withdrawn, then unknown, then granted
tier_change, customer_tag the survivor's row is kept (tiers are re-evaluated from the merged
                          spend by :func:`crm_ml.store.tiers.apply_tier_changes`)
campaign_contact          one contact per campaign: the earliest (its group is the random
                          assignment), marked responded if either record responded
customer_owner            an assignment moves unless its validity period overlaps one the
                          survivor already has; overlapping ones stay on the merged id, so
                          a person never has two account managers at once
========================  =================================================================

``score`` and ``segment_member`` are *not* re-keyed: they record what was computed
or selected for a record at a date, and rewriting them would change history.
Nor is ``erased_customer``: an erasure marks the records it anonymised, and a
later merge neither moves the mark to a survivor nor takes it off the record.

DuckDB applies an update of a primary-key column as delete + insert and can
report a duplicate key inside one transaction, so keyed rows are never updated
in their key: a moving row is deleted and inserted under the new id (whose key
is known to be free), and a collision only updates the survivor's non-key columns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, select

from crm_ml.store.schema import CONSENT_PROTECTION, Base

log = logging.getLogger(__name__)

Row = dict[str, Any]
Resolver = Callable[[list[Row]], Row]

#: Tables whose primary key does not include ``customer_id``: rows simply move.
PLAIN_TABLES = (
    "orders",
    "behavior_event",
    "points_ledger",
    "coupon",
    "stored_value_ledger",
    "customer_change",
)
#: Point-in-time outputs and records of what happened to an id: they keep the id.
KEPT_TABLES = ("score", "segment_member", "customer_merge", "customer", "erased_customer")

_CHUNK = 500


@dataclass
class TableChange:
    """What re-keying does to one table.

    Attributes
    ----------
    table : str
        Table name.
    moved : int
        Rows now keyed by the surviving customer.
    combined : int
        Rows folded into a row the survivor already had (a key collision).
    left : int
        Rows left on the merged id (overlapping owner assignments).
    """

    table: str
    moved: int = 0
    combined: int = 0
    left: int = 0
    deletes: list[Row] = field(default_factory=list, repr=False)
    inserts: list[Row] = field(default_factory=list, repr=False)
    updates: list[Row] = field(default_factory=list, repr=False)
    renames: list[tuple[str, str]] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        """Whether anything would be written."""
        return bool(self.deletes or self.inserts or self.updates or self.renames)


# --------------------------------------------------------------------------- collision rules


def _first(rows: list[Row]) -> Row:
    return dict(rows[0])


def _identity(rows: list[Row]) -> Row:
    kept = dict(rows[0])
    kept["verified"] = any(bool(r["verified"]) for r in rows)
    stamps = [r["created_at"] for r in rows if r["created_at"] is not None]
    kept["created_at"] = min(stamps) if stamps else None
    return kept


def _latest_value(rows: list[Row]) -> Row:
    # max() keeps the first of equal maxima, and rows[0] is the survivor's row.
    return dict(max(rows, key=lambda r: r["updated_at"] or datetime.min))


def _consent(rows: list[Row]) -> Row:
    return dict(min(rows, key=lambda r: CONSENT_PROTECTION.get(r["status"], 1)))


def _contact(rows: list[Row]) -> Row:
    kept = dict(min(rows, key=lambda r: r["contacted_at"] or datetime.max))
    responses = [r for r in rows if r["responded"]]
    if responses:
        first = min(responses, key=lambda r: r["responded_at"] or datetime.max)
        kept.update(responded=True, responded_at=first["responded_at"], order_id=first["order_id"])
    return kept


#: Keyed tables and how a key collision is resolved (first row = the survivor's).
KEYED_TABLES: dict[str, Resolver] = {
    "customer_identity": _identity,
    "custom_field_value": _latest_value,
    "consent": _consent,
    "tier_change": _first,
    "customer_tag": _first,
    "campaign_contact": _contact,
}
OWNER_TABLE = "customer_owner"


# --------------------------------------------------------------------------- computing changes


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _key_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _read_rows(conn: Connection, table: Table, ids: Iterable[str]) -> list[Row]:
    rows: list[Row] = []
    for chunk in _chunks(sorted(set(ids))):
        query = select(table).where(table.c.customer_id.in_(chunk))
        rows.extend(dict(r) for r in conn.execute(query).mappings())
    return rows


def _plain_change(conn: Connection, name: str, mapping: Mapping[str, str]) -> TableChange:
    table = _table(name)
    change = TableChange(name)
    for chunk in _chunks(sorted(mapping)):
        query = (
            select(table.c.customer_id, func.count())
            .where(table.c.customer_id.in_(chunk))
            .group_by(table.c.customer_id)
        )
        for customer_id, count in conn.execute(query):
            change.moved += int(count)
            change.renames.append((customer_id, mapping[customer_id]))
    return change


def _group_rows(
    rows: list[Row], mapping: Mapping[str, str], key: list[str]
) -> dict[tuple, list[Row]]:
    """Group rows by their key after re-keying, survivor's row first, then by merged id."""
    groups: dict[tuple, list[Row]] = {}
    ordered = sorted(rows, key=lambda r: (r["customer_id"] in mapping, r["customer_id"]))
    for row in ordered:
        new_id = mapping.get(row["customer_id"], row["customer_id"])
        group_key = tuple(new_id if k == "customer_id" else row[k] for k in key)
        groups.setdefault(group_key, []).append(row)
    return groups


def _keyed_change(
    conn: Connection, name: str, mapping: Mapping[str, str], resolve: Resolver
) -> TableChange:
    table = _table(name)
    key = _key_columns(table)
    change = TableChange(name)
    rows = _read_rows(conn, table, set(mapping) | set(mapping.values()))
    for group in _group_rows(rows, mapping, key).values():
        moving = [r for r in group if r["customer_id"] in mapping]
        if not moving:
            continue
        survivor_id = mapping[moving[0]["customer_id"]]
        change.deletes.extend({k: r[k] for k in key} for r in moving)
        kept = resolve(group) if len(group) > 1 else dict(group[0])
        kept["customer_id"] = survivor_id
        if group[0]["customer_id"] == survivor_id:
            change.combined += len(moving)
            if kept != group[0]:
                change.updates.append(kept)
        else:
            change.moved += 1
            change.combined += len(moving) - 1
            change.inserts.append(kept)
    return change


def _overlaps(row: Row, others: list[Row]) -> bool:
    end = row["valid_to"] or datetime.max
    return any(
        row["valid_from"] < (o["valid_to"] or datetime.max) and o["valid_from"] < end
        for o in others
    )


def _owner_change(conn: Connection, mapping: Mapping[str, str]) -> TableChange:
    table = _table(OWNER_TABLE)
    change = TableChange(OWNER_TABLE)
    rows = _read_rows(conn, table, set(mapping) | set(mapping.values()))
    held: dict[str, list[Row]] = {}
    for row in rows:
        if row["customer_id"] not in mapping:
            held.setdefault(row["customer_id"], []).append(row)
    moving = sorted(
        (r for r in rows if r["customer_id"] in mapping),
        key=lambda r: (r["customer_id"], r["valid_from"]),
    )
    for row in moving:
        survivor_rows = held.setdefault(mapping[row["customer_id"]], [])
        if _overlaps(row, survivor_rows):
            change.left += 1
            continue
        moved = {**row, "customer_id": mapping[row["customer_id"]]}
        change.deletes.append({"customer_id": row["customer_id"], "valid_from": row["valid_from"]})
        change.inserts.append(moved)
        survivor_rows.append(moved)
        change.moved += 1
    return change


def compute_rekey(conn: Connection, mapping: Mapping[str, str]) -> list[TableChange]:
    """Work out how every history table changes when ``mapping``'s keys merge into its values.

    Parameters
    ----------
    conn : Connection
        An open connection; nothing is written.
    mapping : Mapping[str, str]
        Merged customer id → surviving customer id (already resolved to the final survivor).

    Returns
    -------
    list of TableChange
        One per re-keyed table, in a fixed order.
    """
    if not mapping:
        return []
    changes = [_plain_change(conn, name, mapping) for name in PLAIN_TABLES]
    changes += [_keyed_change(conn, n, mapping, r) for n, r in KEYED_TABLES.items()]
    changes.append(_owner_change(conn, mapping))
    return changes


# --------------------------------------------------------------------------- applying changes


def _where_key(table: Table, key: list[str]) -> Any:
    return and_(*(table.c[k] == bindparam(f"k_{k}") for k in key))


def _params(rows: list[Row], key: list[str], values: tuple[str, ...] = ()) -> list[Row]:
    return [{f"k_{c}": r[c] for c in key} | {f"v_{c}": r[c] for c in values} for r in rows]


def _apply_table(conn: Connection, change: TableChange) -> None:
    table = _table(change.table)
    key = _key_columns(table)
    if change.renames:
        stmt = (
            table.update()
            .where(table.c.customer_id == bindparam("k_old"))
            .values(customer_id=bindparam("k_new"))
        )
        conn.execute(stmt, [{"k_old": old, "k_new": new} for old, new in change.renames])
    if change.deletes:
        conn.execute(table.delete().where(_where_key(table, key)), _params(change.deletes, key))
    if change.updates:
        others = tuple(c.name for c in table.columns if c.name not in key)
        stmt = table.update().where(_where_key(table, key))
        stmt = stmt.values({c: bindparam(f"v_{c}") for c in others})
        conn.execute(stmt, _params(change.updates, key, others))
    if change.inserts:
        conn.execute(table.insert(), change.inserts)


def apply_rekey(conn: Connection, changes: list[TableChange]) -> None:
    """Write changes computed by :func:`compute_rekey` (inside the caller's transaction)."""
    for change in changes:
        if change.changed:
            log.debug("Re-keying %s: %s", change.table, change)
            _apply_table(conn, change)
