"""Loyalty ledgers: points and stored value, as sums of append-only postings.

Rules every posting obeys (:func:`post_points`, :func:`post_stored_value`):

- **Append-only.** A balance is the sum of postings; nothing is ever updated.
  Corrections are new ``adjust`` postings.
- **Idempotent on ``entry_id``.** Posting an entry again credits nothing; posting
  an existing ``entry_id`` with different content is a :class:`LedgerError`, since
  one key must mean one posting (a retried request must not become a second one).
- **No overdraft.** A redemption (points ``redeem``, stored-value ``spend``) may not
  exceed the balance available at its ``posted_at``. Postings at the same instant
  count before the redemption; redemptions at one instant in ``entry_id`` order.
  A back-dated posting that would leave a *later* redemption uncovered is refused
  too. Older ledgers that already break the rule (loaded from a source system)
  do not block new postings: only violations a posting would introduce count.
- **Signs by kind.** earn/top_up/refund are positive, redeem/expire/spend negative,
  adjust either way; zero postings are refused.

Entries are checked one by one in :mod:`crm_ml.store.postings` before the
store is read. Tiers live in :mod:`crm_ml.store.tiers` and are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from crm_ml.errors import LedgerError
from crm_ml.store._timestamps import as_store_time
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.postings import POINTS, STORED_VALUE, LedgerSpec, _differences, _prepare
from crm_ml.store.schema import Base
from crm_ml.store.tiers import TierLevel, TierPolicy, apply_tier_changes, evaluate_tiers

log = logging.getLogger(__name__)

_CHUNK = 500
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PostingResult:
    """What a posting call did.

    Attributes
    ----------
    posted : int
        New entries written.
    already_posted : int
        Entries skipped because the same ``entry_id`` with the same content exists.
    """

    posted: int
    already_posted: int


# --------------------------------------------------------------------------- balances


def _balance(store: Store, spec: LedgerSpec, as_of: object | None) -> pd.Series:
    table = spec.sa_table
    query = select(table.c.customer_id, func.sum(table.c[spec.amount])).group_by(
        table.c.customer_id
    )
    if as_of is not None:
        query = query.where(table.c.posted_at < as_store_time(as_of, name="as_of"))
    with store.connect() as conn:
        check_store(conn)
        found = conn.execute(query).all()
    # Engines return int128 / Decimal / int for sums: cast to the declared type.
    cast = int if spec.integer else float
    index = pd.Index([str(c) for c, _ in found], dtype="str", name="customer_id")
    values = pd.Series(
        [cast(v) for _, v in found],
        index=index,
        dtype=np.int64 if spec.integer else np.float64,
        name=spec.balance,
    )
    return values.sort_index()


def points_balance(store: Store, as_of: object | None = None) -> pd.Series:
    """Each customer's points balance: the sum of postings before ``as_of``.

    Parameters
    ----------
    store : Store
        The store.
    as_of : datetime or str, optional
        Count postings with ``posted_at < as_of``; all postings when omitted.

    Returns
    -------
    pandas.Series
        ``int64`` named ``points_balance``, indexed by ``customer_id`` (sorted).
        Customers with no posting are absent (their balance is 0).
    """
    return _balance(store, POINTS, as_of)


def stored_value_balance(store: Store, as_of: object | None = None) -> pd.Series:
    """Each customer's stored-value (prepaid) balance: the sum of postings before ``as_of``.

    Returns
    -------
    pandas.Series
        ``float64`` named ``stored_value_balance``, indexed by ``customer_id``
        (sorted). Customers with no posting are absent.
    """
    return _balance(store, STORED_VALUE, as_of)


# --------------------------------------------------------------------------- checking the store


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    return (ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK))


def _existing(conn: Connection, spec: LedgerSpec, rows: list[dict]) -> list[dict]:
    """Drop postings already in the ledger; refuse a known entry_id with new content."""
    table = spec.sa_table
    stored: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(r["entry_id"] for r in rows)):
        query = select(table).where(table.c.entry_id.in_(chunk))
        stored.update({r["entry_id"]: dict(r) for r in conn.execute(query).mappings()})
    for row in rows:
        old = stored.get(row["entry_id"])
        if old is not None and old != row:
            raise LedgerError(
                f"Entry {row['entry_id']} was already posted with different content "
                f"({_differences(old, row)}). An entry_id names one posting: retry with "
                "the same content, or give a new posting a new entry_id."
            )
    return [r for r in rows if r["entry_id"] not in stored]


def _check_customers(conn: Connection, spec: LedgerSpec, rows: list[dict]) -> None:
    table = Base.metadata.tables["customer"]
    ids = sorted({r["customer_id"] for r in rows})
    found: dict[str, tuple[str, str | None]] = {}
    for chunk in _chunks(ids):
        query = select(table.c.customer_id, table.c.status, table.c.merged_into)
        query = query.where(table.c.customer_id.in_(chunk))
        if conn.dialect.name == "postgresql":
            # Serialise concurrent postings for a customer so two redemptions cannot
            # both pass the balance check.
            query = query.with_for_update()
        found.update({c: (s, m) for c, s, m in conn.execute(query)})
    for row in rows:
        status = found.get(row["customer_id"])
        if status is None:
            raise LedgerError(
                f"Entry {row['entry_id']} names customer {row['customer_id']}, who is not in "
                f"the store; load the customer before posting {spec.unit}."
            )
        if status[0] == "merged":
            raise LedgerError(
                f"Entry {row['entry_id']} names customer {row['customer_id']}, who was merged "
                f"into {status[1]}; post to {status[1]} instead."
            )


def _timeline(conn: Connection, spec: LedgerSpec, ids: list[str]) -> pd.DataFrame:
    table = spec.sa_table
    columns = ["customer_id", "entry_id", "posted_at", "kind", spec.amount]
    found: list[tuple] = []
    for chunk in _chunks(ids):
        query = select(*(table.c[c] for c in columns)).where(table.c.customer_id.in_(chunk))
        found.extend(tuple(r) for r in conn.execute(query))
    return pd.DataFrame(found, columns=columns)


def overdrafts(timeline: pd.DataFrame, spec: LedgerSpec = POINTS) -> pd.DataFrame:
    """Redemptions that exceed the balance available at their posting time.

    Parameters
    ----------
    timeline : pandas.DataFrame
        Ledger rows: ``customer_id``, ``entry_id``, ``posted_at``, ``kind`` and the
        amount column.
    spec : LedgerSpec
        Which ledger (:data:`POINTS` or :data:`STORED_VALUE`).

    Returns
    -------
    pandas.DataFrame
        The offending rows with a ``balance`` column (available just before them),
        in posting order, default index.
    """
    amount = spec.amount
    if timeline.empty:
        return timeline.assign(balance=pd.Series(dtype="float64"))
    ordered = timeline.assign(_debit=timeline["kind"].isin(spec.debits))
    ordered = ordered.sort_values(["customer_id", "posted_at", "_debit", "entry_id"])
    values = ordered[amount].astype("float64")
    balance = values.groupby(ordered["customer_id"]).cumsum() - values
    bad = ordered["_debit"] & (balance + values < -_TOLERANCE)
    return ordered.assign(balance=balance)[bad].drop(columns="_debit").reset_index(drop=True)


def _format(value: float, spec: LedgerSpec) -> str:
    return f"{value:.0f} {spec.unit}" if spec.integer else f"{value:.2f}"


def _check_balances(conn: Connection, spec: LedgerSpec, rows: list[dict]) -> None:
    ids = sorted({r["customer_id"] for r in rows})
    before = _timeline(conn, spec, ids)
    posting = pd.DataFrame(rows)[before.columns]
    after = pd.concat([before, posting], ignore_index=True) if len(before) else posting
    known = set(overdrafts(before, spec)["entry_id"])
    new = overdrafts(after, spec)
    new = new[~new["entry_id"].isin(known)]
    if new.empty:
        return
    bad = new.iloc[0]
    posted = {r["entry_id"] for r in rows}
    available, attempted = _format(bad["balance"], spec), _format(-bad[spec.amount], spec)
    if bad["entry_id"] in posted:
        raise LedgerError(
            f"Cannot post {bad['kind']} {bad['entry_id']} for customer {bad['customer_id']}: "
            f"the balance at {bad['posted_at']} is {available}, but it takes {attempted}. "
            "Post the earning entries first, or take no more than the balance."
        )
    raise LedgerError(
        f"These postings would leave customer {bad['customer_id']}'s existing {bad['kind']} "
        f"{bad['entry_id']} at {bad['posted_at']} uncovered: the balance then would be "
        f"{available}, but it takes {attempted}. Check the back-dated postings' posted_at."
    )


def _post(store: Store, entries: Any, spec: LedgerSpec) -> PostingResult:
    rows = _prepare(entries, spec)
    if not rows:
        return PostingResult(0, 0)
    with store.begin() as conn:
        check_store(conn)
        new = _existing(conn, spec, rows)
        if new:
            _check_customers(conn, spec, new)
            _check_balances(conn, spec, new)
            conn.execute(spec.sa_table.insert(), new)
    result = PostingResult(posted=len(new), already_posted=len(rows) - len(new))
    log.info(
        "Posted %d %s entries (%d already posted)",
        *(result.posted, spec.unit, result.already_posted),
    )
    return result


def post_points(store: Store, entries: pd.DataFrame | Iterable[Mapping[str, Any]]) -> PostingResult:
    """Append points postings, once each, refusing overdrafts; all or nothing.

    Parameters
    ----------
    store : Store
        The store.
    entries : pandas.DataFrame or iterable of mappings
        Columns ``entry_id`` (the idempotency key), ``customer_id``, ``posted_at``
        (naive means UTC), ``kind`` (earn, redeem, expire, adjust) and ``points``
        (signed integer); optional ``order_id``, ``expires_at``, ``note``.

    Returns
    -------
    PostingResult
        How many entries were written and how many were already posted.

    Raises
    ------
    LedgerError
        For an ``entry_id`` already posted with different content, a redemption above
        the available balance, a wrong sign or kind, or an unknown or merged customer.
        Nothing is written.
    ValidationError
        If columns are missing or unknown, or a value is blank or not a timestamp.
    """
    return _post(store, entries, POINTS)


def post_stored_value(
    store: Store, entries: pd.DataFrame | Iterable[Mapping[str, Any]]
) -> PostingResult:
    """Append stored-value postings, once each, refusing spends above the balance.

    ``entries`` has columns ``entry_id``, ``customer_id``, ``posted_at``, ``kind``
    (top_up, spend, refund, adjust) and ``amount`` (signed); optional ``order_id``.
    Otherwise as :func:`post_points`.

    Returns
    -------
    PostingResult
    """
    return _post(store, entries, STORED_VALUE)


__all__ = [
    "POINTS",
    "STORED_VALUE",
    "LedgerSpec",
    "PostingResult",
    "TierLevel",
    "TierPolicy",
    "apply_tier_changes",
    "evaluate_tiers",
    "overdrafts",
    "points_balance",
    "post_points",
    "post_stored_value",
    "stored_value_balance",
]
