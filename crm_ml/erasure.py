"""Erasing a person on request (删除个人信息): anonymise, forget identities, stop all contact.

:func:`erase_customer` acts on a deletion request for the whole person: the id
given and every record merged into the same survivor (the ids lists and
features treat as one person, :func:`crm_ml.rules.context.surviving_ids`). In
one transaction it

- blanks every identifying or quasi-identifying profile field of each record
  (:data:`ERASED_FIELDS`) and deletes the custom field values;
- deletes the person's identities (phones, emails, WeChat ids, member cards);
- scrubs the values of their profile history (``customer_change``), every
  free text kept about them (:data:`FREE_TEXT`: the detail of their behaviour
  events, such as feedback and complaints, and the notes of their points and
  tier changes, where staff type names and numbers) and the evidence of their
  merges (``customer_merge.reason`` names masked phones);
- records consent ``withdrawn`` for every channel and purpose at the time of
  erasure (source ``erasure``), so no list built afterwards includes them;
- deletes what was derived about them (:data:`DERIVED_TABLES`): scores and their
  reasons, tag memberships and segment snapshot members;
- leaves one audit row in ``customer_change``: who, when and why, and nothing
  about the person;
- marks every record erased in ``erased_customer`` (with the audit row's id), so
  that nothing is derived about them again and imports do not bring them back
  (:mod:`crm_ml.store.erased`).

What is kept, keyed by an id that no longer leads to a name or a contact:
orders and their lines, points, stored value, coupons, tier changes, campaign
contacts and behaviour events, because accounting needs them and the
analyses' totals (revenue, cohorts, campaign uplift) must not change; the
dates ``created_at`` and ``member_since`` (no more revealing than the order
dates kept); owner assignments (who the account manager was); earlier consent
decisions, the record that contact was lawful when it happened. The id itself
stays (``active`` or ``merged`` as before), and so does its row of features,
which analyses count; but the mark keeps it out of what is computed about
people: scoring (``score_customers``, Spark scoring and loading), model
training sets, rule and model tags, manual and batch tags, and segment
snapshots leave it out and say how many they left out; merges into or from it
are refused. No list includes it either: every consent is withdrawn.

Importing an old source file again does not bring the person back: the rows of
an erased id in a customer file (name and profile), an identity file (phones,
emails, WeChat ids, member cards), custom field values and consent grants are
skipped, with a warning that names the file, its lines and the ids. Its orders,
points, events and other accounting rows still load, keyed by the id.

Not reached, and said so in the summary: files already written (lists and
reports under ``reports/`` with their ``_replaced`` archives, list, Parquet and
feature exports), MLflow runs (models logged before input examples were made
up hold five customers' feature rows as their example), and the source systems
themselves, which still hold the person: remove them from source extracts too.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy import Connection, func, or_, select

from crm_ml.errors import NotFoundError
from crm_ml.rules.context import surviving_ids
from crm_ml.store.admin import check_store, utc_now
from crm_ml.store.connection import Store
from crm_ml.store.consent_requests import withdrawal_rows
from crm_ml.store.erased import ERASURE_CHANGE_PREFIX, erased_ids, lock_for_erasure
from crm_ml.store.schema import CONSENT_CHANNELS, CONSENT_PURPOSES, Base, StoreExport
from crm_ml.tags.manual import require_audit

log = logging.getLogger(__name__)

#: Profile fields blanked: the name and what, combined, singles a person out.
ERASED_FIELDS = ("name", "gender", "birth_date", "city", "city_tier", "acquisition_channel")
#: Free-text columns of the rows kept (accounting and history), blanked: people type
#: names, phone numbers and addresses into them.
FREE_TEXT = MappingProxyType(
    {"behavior_event": ("detail",), "points_ledger": ("note",), "tier_change": ("reason",)}
)
#: Tables of what was computed or selected about the person: their rows are deleted.
DERIVED_TABLES = ("score", "customer_tag", "segment_member")
ERASURE_SOURCE = "erasure"
#: What the erasure did to each table's rows, as the summary says it.
DONE = MappingProxyType(
    {
        "customer": "profile(s) anonymised",
        "custom_field_value": "deleted",
        "customer_identity": "deleted",
        "customer_change": "value(s) scrubbed",
        "behavior_event": "free-text detail(s) blanked",
        "points_ledger": "free-text note(s) blanked",
        "tier_change": "free-text reason(s) blanked",
        "customer_merge": "merge evidence scrubbed",
        "consent": "withdrawal(s) recorded",
        **dict.fromkeys(DERIVED_TABLES, "deleted"),
        "erased_customer": "record(s) marked erased (left out of scores, tags, segments and "
        "imports from now on)",
    }
)
MERGE_REASON_ERASED = "merged (evidence erased)"
#: What the erasure cannot reach, for the summary.
NOT_REACHED = (
    "Not reached: files already written — lists and reports under reports/ (with their "
    "_replaced/ archives), list, Parquet and feature exports — and MLflow runs (models logged "
    "before crm_ml made up its input examples hold five customers' feature rows). Remove "
    "this person from the lists written with `crm-ml lists redact {customer_id} --actor … "
    "--reason …` (`crm-ml lists find {customer_id}` shows them first); re-run a "
    "customer_360 report of them to overwrite it; recall copies sent on.",
    "On DuckDB, the deleted and blanked values can stay in the store file's unused space "
    "until the store is copied into a fresh file (README, 'Privacy requests: withdrawal "
    "and erasure'); on PostgreSQL until VACUUM; backups hold them until they expire.",
    "The source systems still hold the person: imports skip their profile, identity, custom "
    "field and consent-grant rows (with a warning naming them), but remove the person from "
    "source extracts too.",
)

_TABLES = MappingProxyType(Base.metadata.tables)


@dataclass(frozen=True)
class ErasureResult:
    """What :func:`erase_customer` did.

    Attributes
    ----------
    customer_id : str
        The id given.
    person_ids : tuple of str
        Every record of the person (the id, its survivor, records merged into it), sorted.
    erased_at : datetime
        When it was recorded (naive UTC).
    rows : mapping of str to int
        Rows affected per table (anonymised, deleted, scrubbed or written), in the
        order the erasure touched them.
    store_exports : tuple of StoreCopy
        The folders of the store exports made before the erasure (``store_export``)
        that are still on disk: they hold the person's data, unmasked.
    """

    customer_id: str
    person_ids: tuple[str, ...]
    erased_at: datetime
    rows: MappingProxyType[str, int]
    store_exports: tuple[StoreCopy, ...] = ()

    def summary(self) -> str:
        """Describe the erasure in plain text, for the CLI and logs."""
        records = ", ".join(self.person_ids)
        lines = [
            f"Erased customer {self.customer_id} (records {records}) at "
            f"{self.erased_at:%Y-%m-%d %H:%M:%S} UTC.",
            *(f"  {table}: {count} {DONE[table]}" for table, count in self.rows.items()),
            "Kept, linked to no name or contact: orders, points, stored value, coupons, tier "
            "changes, campaign contacts, behaviour events and earlier consent decisions. No "
            "score, tag or segment snapshot includes the records from now on, and no list "
            "(every consent withdrawn).",
        ]
        if self.store_exports:
            lines.append(
                f"{len(self.store_exports)} store export(s) made before the erasure still hold "
                "the person, unmasked: delete them, or export the store again into the same "
                "folder (`crm-ml export parquet DIR`)."
            )
            lines += [
                f"  {copy.folder}  (exported {copy.exported_at:%Y-%m-%d %H:%M:%S} UTC by "
                f"{copy.actor})"
                for copy in self.store_exports
            ]
        lines += [text.format(customer_id=self.customer_id) for text in NOT_REACHED]
        return "\n".join(lines)


@dataclass(frozen=True)
class StoreCopy:
    """A folder a store export wrote (``store_export``), with when and by whom."""

    folder: str
    exported_at: datetime
    actor: str


def _store_exports(conn: Connection) -> tuple[StoreCopy, ...]:
    """Return the folder of every store export made so far, each with its latest export.

    One made into the same folder replaced the tables.
    """
    rows = conn.execute(
        select(StoreExport.folder, StoreExport.exported_at, StoreExport.actor).order_by(
            StoreExport.exported_at
        )
    ).all()
    return tuple({folder: StoreCopy(folder, at, actor) for folder, at, actor in rows}.values())


def _still_on_disk(exports: tuple[StoreCopy, ...]) -> tuple[StoreCopy, ...]:
    return tuple(copy for copy in exports if os.path.isdir(copy.folder))


def person_ids(conn: Connection, customer_id: str) -> list[str]:
    """Return every record of the person ``customer_id`` belongs to, sorted.

    Raises
    ------
    NotFoundError
        If ``customer_id`` names no customer of the store.
    """
    customer = _TABLES["customer"]
    found = conn.execute(
        select(customer.c.customer_id).where(customer.c.customer_id == customer_id)
    )
    if found.first() is None:
        raise NotFoundError(
            f"Customer {customer_id!r} is not in the store; check the id (text: 000123 is "
            "not 123). Nothing was erased."
        )
    survivors = surviving_ids(conn)
    root = survivors.get(customer_id, customer_id)
    return sorted({root, *(m for m, s in survivors.items() if s == root)})


def _count(conn: Connection, table: str, ids: list[str], *where: Any) -> int:
    t = _TABLES[table]
    query = select(func.count()).select_from(t).where(t.c.customer_id.in_(ids), *where)
    return int(conn.execute(query).scalar_one())


def _delete_rows(conn: Connection, table: str, ids: list[str]) -> int:
    count = _count(conn, table, ids)
    conn.execute(_TABLES[table].delete().where(_TABLES[table].c.customer_id.in_(ids)))
    return count


def _blank(conn: Connection, table: str, ids: list[str], columns: tuple[str, ...]) -> int:
    """Set ``columns`` to null on the person's rows; return how many rows held a value."""
    t = _TABLES[table]
    held = or_(*(t.c[c].is_not(None) for c in columns))
    count = _count(conn, table, ids, held)
    conn.execute(t.update().where(t.c.customer_id.in_(ids), held).values(dict.fromkeys(columns)))
    return count


def _scrub_merge_evidence(conn: Connection, ids: list[str]) -> int:
    t = _TABLES["customer_merge"]
    theirs = or_(t.c.merged_id.in_(ids), t.c.surviving_id.in_(ids))
    count = int(conn.execute(select(func.count()).select_from(t).where(theirs)).scalar_one())
    conn.execute(t.update().where(theirs).values(reason=MERGE_REASON_ERASED))
    return count


def _withdraw_everything(conn: Connection, ids: list[str], at: datetime) -> int:
    frame = withdrawal_rows(
        ids, channels=CONSENT_CHANNELS, purposes=CONSENT_PURPOSES, at=at, source=ERASURE_SOURCE
    )
    records = cast(list[dict[str, Any]], frame.to_dict("records"))
    # The frame holds pandas timestamps; every driver takes the datetime itself.
    rows = [{**row, "updated_at": at} for row in records]
    conn.execute(_TABLES["consent"].insert(), rows)
    return len(rows)


def _record_erasure(
    conn: Connection, customer_id: str, ids: list[str], *, at: datetime, actor: str, reason: str
) -> int:
    """Write the audit row and mark each record erased; return how many marks are new."""
    # ``field`` must name a customer column: a store moved through Parquet re-imports its
    # customer_change and refuses any other field. The row holds no personal data.
    change_id = f"{ERASURE_CHANGE_PREFIX}{uuid.uuid4().hex}"
    audit = _TABLES["customer_change"]
    conn.execute(
        audit.insert().values(
            change_id=change_id,
            customer_id=customer_id,
            field="status",
            old_value=None,
            new_value=f"erased {', '.join(ids)}: {reason.strip()}",
            changed_at=at,
            actor=actor.strip(),
        )
    )
    # A record erased before keeps its first mark: it says when it was first erased.
    marked = set(erased_ids(conn))
    new = [c for c in ids if c not in marked]
    if new:
        rows = [{"customer_id": c, "erased_at": at, "change_id": change_id} for c in new]
        conn.execute(_TABLES["erased_customer"].insert(), rows)
    return len(new)


def _erase(conn: Connection, ids: list[str], at: datetime) -> dict[str, int]:
    rows = {
        "customer": _blank(conn, "customer", ids, ERASED_FIELDS),
        "custom_field_value": _delete_rows(conn, "custom_field_value", ids),
        "customer_identity": _delete_rows(conn, "customer_identity", ids),
        "customer_change": _blank(conn, "customer_change", ids, ("old_value", "new_value")),
        **{table: _blank(conn, table, ids, columns) for table, columns in FREE_TEXT.items()},
        "customer_merge": _scrub_merge_evidence(conn, ids),
        "consent": _withdraw_everything(conn, ids, at),
    }
    rows.update({table: _delete_rows(conn, table, ids) for table in DERIVED_TABLES})
    return rows


def erase_customer(store: Store, customer_id: str, *, actor: str, reason: str) -> ErasureResult:
    """Erase a person on request, in one transaction (see the module notes for what is kept).

    Parameters
    ----------
    store : Store
        The store to change.
    customer_id : str
        Any record of the person: their other records (merged into the same
        survivor) are erased with it.
    actor : str
        Who carries out the request (e.g. the data-protection officer).
    reason : str
        Why, e.g. the request's ticket number; kept in the audit row, so it must
        not contain the person's data.

    Returns
    -------
    ErasureResult
        The records erased and the rows affected per table; ``summary()`` also
        says what the erasure could not reach.

    Raises
    ------
    ValidationError
        If ``actor`` or ``reason`` is blank; nothing is written.
    NotFoundError
        If ``customer_id`` names no customer; nothing is written.
    """
    require_audit(actor, reason, work="Erasing a customer", kept=" for the erasure record")
    customer_id = str(customer_id).strip()
    at = utc_now()
    with store.begin() as conn:
        check_store(conn)
        lock_for_erasure(conn)  # a run writing scores or tags commits first; we delete them
        ids = person_ids(conn, customer_id)
        rows = _erase(conn, ids, at)
        marked = _record_erasure(conn, customer_id, ids, at=at, actor=actor, reason=reason)
        rows["erased_customer"] = marked
        exports = _store_exports(conn)
    # Looked for after the commit: a folder on a slow share must not hold the store's lock.
    copies = _still_on_disk(exports)
    result = ErasureResult(customer_id, tuple(ids), at, MappingProxyType(rows), copies)
    log.warning("Erased customer %s (records %s) by %s", customer_id, ", ".join(ids), actor)
    return result
