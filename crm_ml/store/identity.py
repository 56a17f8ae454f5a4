"""Identity unification: finding duplicate customers and merging them into one person.

Strong evidence (auto-merged by :func:`plan_merges`): two customers hold the same
**verified phone** or the same **member card**. Customers linked through any chain
of strong evidence (A shares a phone with B, B a card with C) are one person.

Weak evidence (only flagged by :func:`weak_matches`, never merged automatically):
a shared email, WeChat id, or a phone that not every holder has verified —
shop assistants often key in the store's own number or a relative's.

The surviving customer of a group is the one **created earliest**, then the one
with **most orders**, then the smallest ``customer_id``: the oldest record carries
the longest history and the acquisition channel that really brought the person in.

:func:`merge_customers` applies a plan in one transaction (see
:mod:`crm_ml.store.rekey` for how each table's history moves). Identity values in
``evidence`` are masked (``+86138****8000``): plans are shown on screens and in logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Connection, func, select

from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.schema import Base

log = logging.getLogger(__name__)

PLAN_COLUMNS = ("merged_id", "surviving_id", "evidence", "reason")
WEAK_COLUMNS = ("kind", "evidence", "customer_ids", "n_customers", "reason")
STRONG_REASON = "strong identity match"

_CUSTOMER = Base.metadata.tables["customer"]
_IDENTITY = Base.metadata.tables["customer_identity"]
_ORDERS = Base.metadata.tables["orders"]


def mask_value(kind: str, value: str) -> str:
    """Mask an identity value for display: keep enough to recognise it, not to use it.

    Examples
    --------
    >>> mask_value("phone", "+8613800138000")
    '+86138****8000'
    >>> mask_value("email", "wang.fang@example.com")
    'w***@example.com'
    """
    if kind == "email" and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if len(value) <= 4:
        return "*" * len(value)
    keep = 4 if len(value) >= 10 else 2
    head = len(value) - keep - 4 if len(value) >= 10 else 0
    return value[:head] + "****" + value[-keep:]


# --------------------------------------------------------------------------- reading


def _roots(pointers: dict[str, str]) -> dict[str, str]:
    """Follow ``merged_into`` pointers to the customer each merged id now belongs to."""
    roots: dict[str, str] = {}
    for start in pointers:
        seen, current = {start}, pointers[start]
        while current in pointers and current not in seen:
            seen.add(current)
            current = pointers[current]
        roots[start] = current
    return roots


def _read_customers(conn: Connection) -> pd.DataFrame:
    query = select(
        _CUSTOMER.c.customer_id,
        _CUSTOMER.c.status,
        _CUSTOMER.c.merged_into,
        _CUSTOMER.c.created_at,
    )
    customers = pd.DataFrame(
        conn.execute(query).all(), columns=["customer_id", "status", "merged_into", "created_at"]
    )
    per_customer = select(_ORDERS.c.customer_id, func.count()).group_by(_ORDERS.c.customer_id)
    counts: dict[str, int] = {str(c): int(n) for c, n in conn.execute(per_customer)}
    customers["orders"] = customers["customer_id"].map(counts).fillna(0).astype("int64")
    return customers.set_index("customer_id")


def _read_identities(conn: Connection, customers: pd.DataFrame) -> pd.DataFrame:
    """Identities keyed by the customer that now owns them (merged ids resolved)."""
    query = select(
        _IDENTITY.c.customer_id, _IDENTITY.c.kind, _IDENTITY.c.value, _IDENTITY.c.verified
    )
    frame = pd.DataFrame(
        conn.execute(query).all(), columns=["customer_id", "kind", "value", "verified"]
    )
    merged = customers[customers["status"] == "merged"]["merged_into"].dropna()
    roots = _roots({str(c): str(into) for c, into in merged.items()})
    frame["customer_id"] = frame["customer_id"].map(lambda c: roots.get(c, c))
    frame = frame[frame["customer_id"].isin(customers.index)]
    return frame.astype({"verified": bool})


def _strong(identities: pd.DataFrame) -> pd.DataFrame:
    phone = (identities["kind"] == "phone") & identities["verified"]
    card = identities["kind"] == "member_card"
    return identities[phone | card]


# --------------------------------------------------------------------------- grouping


def _components(links: Iterable[Iterable[str]]) -> dict[str, str]:
    """Union-find: customer id → a representative of its connected group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in links:
        ids = sorted(set(members))
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    return {x: find(x) for x in parent}


def choose_survivor(customers: pd.DataFrame) -> str:
    """Pick the surviving id: earliest ``created_at``, then most ``orders``, then smallest id.

    Parameters
    ----------
    customers : pandas.DataFrame
        Indexed by ``customer_id`` with columns ``created_at`` and ``orders``.
    """
    ranked = customers.assign(
        _created=customers["created_at"].fillna(pd.Timestamp.max),
        _orders=-customers["orders"],
        _id=customers.index,
    )
    return str(ranked.sort_values(["_created", "_orders", "_id"]).index[0])


def _evidence(member: str, group: set[str], strong: pd.DataFrame) -> str:
    """Describe the strong identities ``member`` shares with someone else in its group."""
    held = strong[strong["customer_id"].isin(group)]
    shared = held.groupby(["kind", "value"])["customer_id"].transform("nunique") > 1
    mine = held[shared & (held["customer_id"] == member)].drop_duplicates(["kind", "value"])
    parts = [
        f"{kind} {mask_value(kind, value)}" + (" (verified)" if kind == "phone" else "")
        for kind, value in sorted(zip(mine["kind"], mine["value"], strict=True))
    ]
    return "; ".join(parts)


def plan_merges(store: Store) -> pd.DataFrame:
    """Propose merges of customers that share a verified phone or a member card.

    Nothing is written; review the plan, then pass it to :func:`merge_customers`.
    Customers already merged are resolved to their survivor first, so running this
    again after a merge proposes nothing new.

    Returns
    -------
    pandas.DataFrame
        One row per customer to merge, columns ``merged_id``, ``surviving_id``,
        ``evidence`` (the shared identities, masked) and ``reason``; sorted by
        ``surviving_id`` then ``merged_id``, with a default integer index.
    """
    with store.connect() as conn:
        check_store(conn)
        customers = _read_customers(conn)
        strong = _strong(_read_identities(conn, customers))
    active = customers[customers["status"] == "active"]
    strong = strong[strong["customer_id"].isin(active.index)]
    groups = strong.groupby(["kind", "value"])["customer_id"].unique()
    components = _components(ids for ids in groups if len(ids) > 1)
    rows = []
    for members in pd.Series(components).groupby(pd.Series(components)).groups.values():
        group = set(members)
        survivor = choose_survivor(active.loc[sorted(group)])
        for member in sorted(group - {survivor}):
            rows.append((member, survivor, _evidence(member, group, strong), STRONG_REASON))
    plan = pd.DataFrame(rows, columns=list(PLAN_COLUMNS), dtype="str")
    log.info("Planned %d merges into %d customers", len(plan), plan["surviving_id"].nunique())
    return plan.sort_values(["surviving_id", "merged_id"], ignore_index=True)


def _weak_reason(kind: str, verified: pd.Series) -> str:
    if kind == "phone":
        return "shared phone, not verified by every holder" if not verified.all() else ""
    return f"shared {kind.replace('_', ' ')}"


def weak_matches(store: Store) -> pd.DataFrame:
    """Flag customers who share weaker evidence: for review, never merged automatically.

    A group is reported when two or more active customers share an email, a WeChat
    id, or a phone that not every holder has verified, unless they are all already
    one person by strong evidence (and so appear in :func:`plan_merges`).

    Returns
    -------
    pandas.DataFrame
        One row per shared identity, columns ``kind``, ``evidence`` (masked value),
        ``customer_ids`` (sorted, comma-separated), ``n_customers`` and ``reason``;
        sorted by ``n_customers`` descending, then ``kind`` and ``evidence``.
    """
    with store.connect() as conn:
        check_store(conn)
        customers = _read_customers(conn)
        identities = _read_identities(conn, customers)
    active = customers.index[customers["status"] == "active"]
    identities = identities[identities["customer_id"].isin(active)]
    strong = _strong(identities)
    strong_groups = strong.groupby(["kind", "value"])["customer_id"].unique()
    person = _components(ids for ids in strong_groups if len(ids) > 1)
    weak = identities[identities["kind"] != "member_card"]
    rows = []
    for (kind, value), group in weak.groupby(["kind", "value"]):
        ids = sorted(set(group["customer_id"]))
        reason = _weak_reason(str(kind), group["verified"])
        if len(ids) < 2 or not reason or len({person.get(i, i) for i in ids}) < 2:
            continue
        rows.append((kind, mask_value(str(kind), str(value)), ",".join(ids), len(ids), reason))
    frame = pd.DataFrame(rows, columns=list(WEAK_COLUMNS))
    frame = frame.astype({c: "str" for c in WEAK_COLUMNS if c != "n_customers"})
    frame = frame.astype({"n_customers": "int64"})
    return frame.sort_values(
        ["n_customers", "kind", "evidence"], ascending=[False, True, True], ignore_index=True
    )


# The merge itself lives in crm_ml.store.merge; it is part of this module's API.
from crm_ml.store.merge import MergeResult, merge_customers  # noqa: E402

__all__ = [
    "MergeResult",
    "choose_survivor",
    "mask_value",
    "merge_customers",
    "plan_merges",
    "weak_matches",
]
