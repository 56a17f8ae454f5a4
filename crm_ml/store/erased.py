"""Customers erased on request: which ids they are, and leaving them out.

:func:`crm_ml.erasure.erase_customer` anonymises every record of a person and
marks each one in ``erased_customer``. The id itself stays in ``customer``
(still ``active`` or ``merged``) with its orders, points and events, for
accounting, so ``customer_features`` still gives it a row. The mark is what
keeps it out of what is computed about people from then on: scores (single
machine and Spark), training sets, rule, model, manual and batch tags, and
segment snapshots each leave erased ids out and say how many
(:func:`erased_note`); merges refuse to link an erased record to another.

An erasure and a run that writes scores, tags or snapshot members take turns
(:func:`lock_out_erasures`), so a person erased while the run computed is left
out of what it writes, or has it deleted by the erasure that waited for it.

Imports skip the rows that would put the person back (:func:`erased_rows`): an
erased id's rows of a customer file (name and profile), an identity file
(phones, emails, WeChat ids, member cards), custom field values and consent
grants, with a warning naming the file, the rows and the ids. Orders, points,
events and the other accounting rows still load, keyed by the id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import MappingProxyType

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select, text

from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.rejects import RejectLog
from crm_ml.store.schema import ErasedCustomer

#: How the ``change_id`` of an erasure's audit row in ``customer_change`` begins.
ERASURE_CHANGE_PREFIX = "erasure:"

#: What an erased id's rows of each table would put back; imports skip those rows.
#: Consent only when it grants: a withdrawal restores nothing.
RESTORED = MappingProxyType(
    {
        "customer": "their name and profile",
        "customer_identity": "their phones, emails, WeChat ids and member cards",
        "custom_field_value": "their custom profile items",
        "consent": "consent to contact them",
    }
)

#: The PostgreSQL advisory lock an erasure takes alone and writers of derived rows share.
ERASURE_LOCK = "crm_ml.erasure"

#: How many ids and lines a warning quotes.
QUOTED_IDS = 10
QUOTED_LINES = 5


def erased_ids(conn: Connection) -> pd.Index:
    """Return the id of every customer record erased on request, sorted.

    Raises
    ------
    SchemaVersionError
        If the store has another schema version: one made before erasures were
        marked needs ``crm-ml upgrade``, which marks those already done.
    """
    check_store(conn)
    ids = conn.execute(select(ErasedCustomer.customer_id)).scalars()
    return pd.Index(sorted(ids), dtype="str", name="customer_id")


def lock_out_erasures(conn: Connection) -> pd.Index:
    """Make erasures wait for this transaction, and return the ids erased so far.

    A run that writes what is derived about people (scores, tags, snapshot
    members) calls it in its writing transaction and leaves these ids out. An
    erasure committed while the run computed is then among them; one that
    starts later waits until the run commits, and deletes what it wrote. On
    PostgreSQL the waiting is a shared advisory lock that :func:`lock_for_erasure`
    takes alone; DuckDB and SQLite let one transaction write at a time anyway.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock_shared(hashtext(:key))"), {"key": ERASURE_LOCK}
        )
    return erased_ids(conn)


def lock_for_erasure(conn: Connection) -> None:
    """Wait until no run is writing derived rows, and keep new ones waiting until commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": ERASURE_LOCK})


def is_erased(ids: pd.Index, erased: pd.Index) -> np.ndarray:
    """Return, per id of ``ids`` (read as text), whether it is one of ``erased``."""
    return np.asarray(pd.Index(ids).astype("str").isin(erased), dtype=bool)


def drop_erased(store: Store, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Index]:
    """Leave erased customers out of a frame indexed by ``customer_id``.

    Returns
    -------
    tuple
        ``frame`` without the erased customers' rows (same columns and order),
        and the ids left out (text).
    """
    with store.connect() as conn:
        found = is_erased(frame.index, erased_ids(conn))
    if not found.any():
        return frame, pd.Index([], dtype="str", name="customer_id")
    return frame[~found], pd.Index(frame.index[found]).astype("str")


def rows_not_erased(
    frames: Iterable[pd.DataFrame], erased: pd.Index, left_out: list[int]
) -> Iterator[pd.DataFrame]:
    """Pass ``frames`` on without erased customers' rows, counting them in ``left_out[0]``."""
    for frame in frames:
        found = is_erased(pd.Index(frame["customer_id"]), erased)
        left_out[0] += int(found.sum())
        if not found.all():
            yield frame[~found]


def erased_note(count: int, left_out_of: str) -> str:
    """Say how many erased customers were left out of what, and why; empty for none.

    ``2 customers erased on request were left out of the crm-churn scores: …``
    """
    if not count:
        return ""
    people, were = ("customer", "was") if count == 1 else ("customers", "were")
    return (
        f"{count:,} {people} erased on request {were} left out of {left_out_of}: nothing more "
        "is computed about an erased person (`crm-ml customers erase`), whose orders and "
        "points stay only for accounting."
    )


def erased_rows(conn: Connection, table: str, clean: pd.DataFrame, log: RejectLog) -> np.ndarray:
    """Return which accepted rows of an import would put back what an erasure removed.

    Those are the rows of erased customers in the tables of :data:`RESTORED`
    (consent: grants only). Rejected rows are not among them: a bad row still
    fails the import, whoever it belongs to.

    Returns
    -------
    numpy.ndarray
        Per row of ``clean``, whether the import skips it.
    """
    if table not in RESTORED:
        return np.zeros(len(clean), dtype=bool)
    skip = ~log.rejected
    if table == "consent":
        skip &= np.asarray((clean["status"] == "granted").fillna(False), dtype=bool)
    if not skip.any():
        return skip
    return skip & is_erased(pd.Index(clean["customer_id"].fillna("")), erased_ids(conn))


def skipped_warning(table: str, clean: pd.DataFrame, skip: np.ndarray, log: RejectLog) -> str:
    """Say which rows of the file were skipped as an erased customer's, and what to do."""
    ids = list(dict.fromkeys(clean.loc[skip, "customer_id"].astype("str")))
    shown = ", ".join(repr(c) for c in ids[:QUOTED_IDS])
    more_ids = f", … and {len(ids) - QUOTED_IDS} more" if len(ids) > QUOTED_IDS else ""
    lines = log.lines[skip]
    units = f"{log.unit}s" if len(lines) > 1 else log.unit
    at = ", ".join(str(line) for line in lines[:QUOTED_LINES])
    more_lines = " …" if len(lines) > QUOTED_LINES else ""
    return (
        f"{len(lines):,} row(s) of {log.source} ({units} {at}{more_lines}) belong to "
        f"{len(ids):,} customer(s) erased on request and were skipped: {shown}{more_ids}. "
        f"Loading them would put back {RESTORED[table]}, which the erasure removed. Remove "
        "these customers from the source extract; their orders, points and events still load."
    )
