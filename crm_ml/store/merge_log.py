"""Importing a store's merge log (``customer_merge``): the rules that need the store.

The merge log travels with a store's export (``crm-ml export parquet``), where
every merge has already been applied: ``crm-ml customers merge`` moved the merged
record's history to its survivor, set its ``status`` to ``'merged'`` and pointed
its ``merged_into`` at the final survivor (:mod:`crm_ml.store.merge`). Importing
the log therefore re-keys nothing: it records the merges as they were decided.

Features and list consent read the log first and ``customer.merged_into`` for
the merged customers it does not list, following chains to the end
(:func:`crm_ml.features.identity.resolve_id_map`,
:func:`crm_ml.rules.context.surviving_ids`). A row ``merged_id -> surviving_id``
that the store's log does not hold yet is accepted only when

- both customers are in the store and they differ (checked with the other
  references and row rules, :mod:`crm_ml.store.validation`);
- the merged customer has ``status='merged'``: an active customer has not been
  merged, and a log row alone would hide its history from every feature without
  moving it (``crm-ml customers merge`` merges customers);
- following the merges from it (this file's and the store's) does not come back
  to a customer already passed: a cycle has no survivor, and features refuse it;
- where the customer's ``merged_into`` is set, following the merges from it ends
  at the same customer as before the import: the one the store already holds its
  records under. So importing the log changes no one's features or list
  consent. (The log may name an intermediate survivor: with A merged into B and
  later B into C, the log keeps ``A -> B`` while ``merged_into`` says C.)

A row already in the store's log is left to :func:`crm_ml.store.reconcile.plan_load`:
given again as it is, it changes nothing; given with other values, it is refused,
since a merge is recorded once and never undone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, select

from crm_ml.store.rejects import RejectLog
from crm_ml.store.schema import Base
from crm_ml.store.validation import TableSpec

_CUSTOMER = Base.metadata.tables["customer"]
_MERGE = Base.metadata.tables["customer_merge"]


def _pointers(conn: Connection, query: Select[str, str | None]) -> dict[str, str | None]:
    """Map the first column of ``query``'s rows to the second (ids as text, blank as None)."""
    return {str(a): None if b is None else str(b) for a, b in conn.execute(query)}


def _follow(start: str, pointers: dict[str, str]) -> list[str]:
    """Follow merges from ``start`` to its final survivor; on a cycle, stop at the repeated id."""
    path, seen = [start], {start}
    while path[-1] in pointers:
        path.append(pointers[path[-1]])
        if path[-1] in seen:
            break
        seen.add(path[-1])
    return path


def _is_cycle(path: list[str]) -> bool:
    return path[-1] in path[:-1]


def _chain_problem(merged: str, new: dict[str, str], old: dict[str, str]) -> str | None:
    """Why the row merging ``merged`` is refused, or None; ``{value}`` is its surviving_id."""
    path = _follow(merged, new)
    chain = " -> ".join(path)
    if _is_cycle(path):
        return (
            f"{{value}} makes the merges form a cycle ({chain}): expected every chain of merges "
            "to end at one surviving customer"
        )
    if merged not in old:
        return None  # merged_into is blank: the log is the only record of where it went
    before = _follow(merged, old)[-1]
    if path[-1] == before:
        return None
    return (
        f"{{value}} leads customer {merged} to {path[-1]} ({chain}), but the store holds "
        f"{merged}'s records under {before} (customer.merged_into): expected a merge log that "
        "agrees with the customer table; import customer and customer_merge from the same export"
    )


def _reject_active(
    clean: pd.DataFrame, rows: np.ndarray, merged: dict[str, str | None], log: RejectLog
) -> None:
    ids = clean["merged_id"]
    active = rows & ~ids.isin(list(merged)).to_numpy(dtype=bool)
    log.add(
        active,
        "merged_id",
        "not_merged",
        ids,
        "customer {value} is active in the store: expected status 'merged' (the merge log "
        "records merges already applied, as the exported customer table shows them); import "
        "customer from the same export first, or merge customers with `crm-ml customers merge`",
    )


def _reject_chains(
    clean: pd.DataFrame, rows: np.ndarray, old: dict[str, str], log: RejectLog
) -> None:
    """Reject rows that form a cycle or move records; again until the rest agree.

    Each pass works on the rows still accepted, since a refused row no longer
    points anywhere and the chains through it change.
    """
    while True:
        pending = np.flatnonzero(rows & ~log.rejected)
        merged_ids = clean["merged_id"].to_numpy()[pending]
        new = old | dict(zip(merged_ids, clean["surviving_id"].to_numpy()[pending], strict=True))
        messages = np.empty(len(clean), dtype=object)
        for row, merged in zip(pending, merged_ids, strict=True):
            messages[row] = _chain_problem(merged, new, old)
        bad = np.asarray([m is not None for m in messages], dtype=bool)
        if not bad.any():
            return
        log.add(bad, "surviving_id", "merge_chain", clean["surviving_id"], messages)


def check_merge_log(conn: Connection, spec: TableSpec, clean: pd.DataFrame, log: RejectLog) -> None:
    """Reject ``customer_merge`` rows that the store's customers contradict.

    The rules are those of this module's docstring; rows already rejected (an
    unknown customer, say) and rows already in the store's log are not checked.
    """
    if spec.name != "customer_merge":
        return
    logged = _pointers(conn, select(_MERGE.c.merged_id, _MERGE.c.surviving_id))
    merged = _pointers(
        conn,
        select(_CUSTOMER.c.customer_id, _CUSTOMER.c.merged_into).where(
            _CUSTOMER.c.status == "merged"
        ),
    )
    rows = ~log.rejected & ~clean["merged_id"].isin(list(logged)).to_numpy(dtype=bool)
    _reject_active(clean, rows, merged, log)
    # As the features read merges: the log first, merged_into for the customers it omits.
    old = {m: s for m, s in ({**merged, **logged}).items() if s is not None and m != s}
    _reject_chains(clean, rows, old, log)
