"""Merging duplicate customers into one surviving customer, in one transaction.

A plan (from :func:`crm_ml.store.identity.plan_merges`, or written by hand) lists
``merged_id → surviving_id`` pairs. Applying it:

1. resolves chains: with A → B and B → C (in the plan, or B merged earlier), A and
   B both end up in C; a cycle or a customer already merged elsewhere is refused;
2. moves every merged customer's history to the survivor (:mod:`crm_ml.store.rekey`);
3. fills the survivor's blank profile fields from the merged records (oldest
   first), keeps the earliest ``created_at`` and ``member_since``, and marks it a
   member if either was; each filled field is audited in ``customer_change``;
4. marks merged customers ``status='merged'`` with ``merged_into`` naming the
   final survivor (customers merged earlier into a now-merged id are re-pointed),
   and records each merge in ``customer_merge``.

Running the same plan again changes nothing. ``customer.merged_into`` always
names an active customer; ``customer_merge`` keeps each merge as it was decided.
A record erased on request (``crm-ml customers erase``) is never merged, into or
from: linking its history to another record would undo the erasure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, bindparam, select

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.store._timestamps import as_store_time
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.erased import erased_ids
from crm_ml.store.rekey import TableChange, apply_rekey, compute_rekey
from crm_ml.store.schema import Base

log = logging.getLogger(__name__)

_CUSTOMER = Base.metadata.tables["customer"]
_MERGE = Base.metadata.tables["customer_merge"]
_CHANGE = Base.metadata.tables["customer_change"]

#: Profile fields a survivor takes from a merged record when its own is blank.
FILLED_FIELDS = ("name", "gender", "birth_date", "city", "city_tier")
MERGE_COLUMNS = ("merged_id", "surviving_id", "evidence", "reason", "action")
PROFILE_COLUMNS = ("customer_id", "field", "old_value", "new_value", "source_id")
DEFAULT_REASON = "manual merge"
_CHUNK = 500


# --------------------------------------------------------------------------- merging


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_customers` did, or would do in a dry run.

    Attributes
    ----------
    merges : pandas.DataFrame
        One row per plan row: ``merged_id``, ``surviving_id`` (the final survivor,
        after following chains), ``evidence``, ``reason`` and ``action``
        (``merge``, or ``already merged`` when an earlier run did it).
    tables : pandas.DataFrame
        Indexed by ``table``: ``moved`` (rows re-keyed to the survivor), ``combined``
        (rows folded into a row the survivor already had) and ``left`` (rows kept on
        the merged id); only tables with a non-zero count.
    profile_changes : pandas.DataFrame
        Survivor profile fields filled from merged records: ``customer_id``,
        ``field``, ``old_value``, ``new_value``, ``source_id``.
    dry_run : bool
        True when nothing was written.
    """

    merges: pd.DataFrame
    tables: pd.DataFrame
    profile_changes: pd.DataFrame
    dry_run: bool

    @property
    def merged(self) -> int:
        """Customers newly marked as merged."""
        return int((self.merges["action"] == "merge").sum())

    @property
    def changed(self) -> bool:
        """Whether the run wrote (or would write) anything."""
        moved = self.tables[["moved", "combined"]].to_numpy().sum() if len(self.tables) else 0
        return bool(self.merged or moved or len(self.profile_changes))

    def summary(self) -> str:
        """Describe the run in plain text, for the CLI and logs (``crm-ml customers merge``)."""
        verb = "would merge" if self.dry_run else "merged"
        done = len(self.merges) - self.merged
        survivors = self.merges.loc[self.merges["action"] == "merge", "surviving_id"].nunique()
        lines = [
            f"{'Dry run: ' if self.dry_run else ''}{verb} {self.merged} customers into "
            f"{survivors} ({done} already merged)."
        ]
        new = self.merges[self.merges["action"] == "merge"]
        for merged, surviving, evidence, reason in zip(
            new["merged_id"], new["surviving_id"], new["evidence"], new["reason"], strict=True
        ):
            why = f"{reason}: {evidence}" if evidence else reason
            lines.append(f"  {merged} -> {surviving}  ({why})")
        for table, moved, combined, left in self.tables.itertuples():
            lines.append(f"  {table}: {moved} moved, {combined} combined, {left} left")
        if len(self.profile_changes):
            lines.append(f"  profile fields filled on survivors: {len(self.profile_changes)}")
        if not self.changed:
            lines.append("Nothing to change.")
        return "\n".join(lines)


# --------------------------------------------------------------------------- checking the plan


def _check_plan(plan: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("merged_id", "surviving_id") if c not in plan.columns]
    if missing:
        raise ValidationError(
            f"The merge plan lacks column(s) {', '.join(missing)}; expected merged_id and "
            "surviving_id (evidence and reason optional), found "
            f"{', '.join(map(str, plan.columns))}."
        )
    frame = plan.reindex(columns=list(MERGE_COLUMNS[:4])).astype("object")
    if frame[["merged_id", "surviving_id"]].isna().any().any():
        bad = frame.index[frame[["merged_id", "surviving_id"]].isna().any(axis=1)][0]
        raise ValidationError(f"Merge plan row {bad} has a blank merged_id or surviving_id.")
    frame = frame.fillna({"evidence": "", "reason": DEFAULT_REASON}).astype("str")
    frame = frame.drop_duplicates(["merged_id", "surviving_id"], ignore_index=True)
    selfish = frame[frame["merged_id"] == frame["surviving_id"]]
    if len(selfish):
        raise ValidationError(
            f"Merge plan merges customer {selfish['merged_id'].iloc[0]} into itself; "
            "remove that row."
        )
    twice = frame[frame["merged_id"].duplicated(keep=False)]
    if len(twice):
        first = twice["merged_id"].iloc[0]
        targets = ", ".join(sorted(twice.loc[twice["merged_id"] == first, "surviving_id"]))
        raise ValidationError(
            f"Merge plan merges customer {first} into several customers ({targets}); "
            "keep one row per merged_id."
        )
    return frame


def _load_customers(conn: Connection, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Rows of every merged customer, of ``ids``, and of the customers they point to."""
    merged = select(_CUSTOMER).where(_CUSTOMER.c.status == "merged")
    found = {r["customer_id"]: dict(r) for r in conn.execute(merged).mappings()}
    wanted = sorted((ids | {r["merged_into"] for r in found.values()}) - set(found) - {None})
    for start in range(0, len(wanted), _CHUNK):
        query = select(_CUSTOMER).where(_CUSTOMER.c.customer_id.in_(wanted[start : start + _CHUNK]))
        found.update({r["customer_id"]: dict(r) for r in conn.execute(query).mappings()})
    return found


def _final(start: str, pointers: dict[str, str]) -> str:
    path, current = [start], start
    while current in pointers:
        current = pointers[current]
        if current in path:
            cycle = " -> ".join([*path[path.index(current) :], current])
            raise ValidationError(
                f"Merge plan forms a cycle ({cycle}); each chain must end at one "
                "surviving customer."
            )
        path.append(current)
    return current


def _resolve(frame: pd.DataFrame, customers: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Add the final survivor and the action (``merge`` / ``already merged``) to each row."""
    unknown = sorted((set(frame["merged_id"]) | set(frame["surviving_id"])) - set(customers))
    if unknown:
        raise NotFoundError(
            f"Merge plan names {len(unknown)} customer(s) not in the store: "
            f"{', '.join(unknown[:5])}. Load them first or drop those rows."
        )
    existing = {c: r["merged_into"] for c, r in customers.items() if r["status"] == "merged"}
    pointers = dict(existing)
    for merged, surviving in zip(frame["merged_id"], frame["surviving_id"], strict=True):
        pointers.setdefault(merged, surviving)
    finals = [_final(str(s), pointers) for s in frame["surviving_id"]]
    for merged, final in zip(frame["merged_id"], finals, strict=True):
        earlier = _final(str(merged), pointers)
        if merged in existing and earlier != final:
            raise ValidationError(
                f"Customer {merged} was already merged into {earlier}, but the plan merges it "
                f"into {final}. Merges are not undone: merge {earlier} into {final} instead."
            )
    actions = ["already merged" if m in existing else "merge" for m in frame["merged_id"]]
    return frame.assign(surviving_id=finals, action=actions)


def _check_not_erased(conn: Connection, frame: pd.DataFrame) -> None:
    """Refuse a plan that would merge a record erased on request, into or from another."""
    new = frame[frame["action"] == "merge"]
    erased = set(erased_ids(conn))
    rows = new[new["merged_id"].isin(erased) | new["surviving_id"].isin(erased)]
    if len(rows):
        pairs = ", ".join(rows["merged_id"] + " → " + rows["surviving_id"])
        named = sorted(erased & (set(rows["merged_id"]) | set(rows["surviving_id"])))
        raise ValidationError(
            f"Merge plan merges {len(rows)} pair(s) involving customer(s) erased on request "
            f"({', '.join(named)}): {pairs}. Linking an erased record's history to another "
            "record would undo the erasure; drop those rows. Nothing was merged."
        )


def _rekey_mapping(frame: pd.DataFrame, customers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Map merged id → final survivor, for plan rows and for ids merged earlier into them."""
    mapping = dict(zip(frame["merged_id"], frame["surviving_id"], strict=True))
    for customer_id, row in customers.items():
        if row["status"] == "merged" and row["merged_into"] in mapping:
            mapping[customer_id] = mapping[row["merged_into"]]
    return mapping


# --------------------------------------------------------------------------- profiles


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _profile_changes(
    frame: pd.DataFrame, customers: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Fields each survivor takes from the records merged into it, oldest record first."""
    changes: list[dict[str, Any]] = []
    new = frame[frame["action"] == "merge"]
    for survivor, group in new.groupby("surviving_id"):
        current = dict(customers[str(survivor)])
        sources = sorted(
            (customers[m] for m in group["merged_id"]),
            key=lambda r: (r["created_at"] or datetime.max, r["customer_id"]),
        )
        for source in sources:
            for field, value in _takes(current, source).items():
                changes.append(
                    {
                        "customer_id": survivor,
                        "field": field,
                        "old_value": current[field],
                        "new_value": value,
                        "source_id": source["customer_id"],
                    }
                )
                current[field] = value
    return changes


def _takes(current: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    taken = {f: source[f] for f in FILLED_FIELDS if current[f] is None and source[f] is not None}
    if source["is_member"] and not current["is_member"]:
        taken["is_member"] = True
    for field in ("member_since", "created_at"):
        if source[field] is not None and (current[field] is None or source[field] < current[field]):
            taken[field] = source[field]
    return taken


# --------------------------------------------------------------------------- writing


def _write(
    conn: Connection,
    frame: pd.DataFrame,
    customers: dict[str, dict[str, Any]],
    mapping: dict[str, str],
    changes: list[TableChange],
    profile: list[dict[str, Any]],
    *,
    at: datetime,
    actor: str,
) -> None:
    apply_rekey(conn, changes)
    pointer = (
        _CUSTOMER.update()
        .where(_CUSTOMER.c.customer_id == bindparam("k_id"))
        .values(status="merged", merged_into=bindparam("k_into"))
    )
    repoint = [
        {"k_id": m, "k_into": s}
        for m, s in mapping.items()
        if (customers[m]["status"], customers[m]["merged_into"]) != ("merged", s)
    ]
    if repoint:
        conn.execute(pointer, repoint)
    for change in profile:
        stmt = _CUSTOMER.update().where(_CUSTOMER.c.customer_id == change["customer_id"])
        conn.execute(stmt.values({change["field"]: change["new_value"]}))
    if profile:
        conn.execute(_CHANGE.insert(), [_audit(c, at, actor) for c in profile])
    new = frame[frame["action"] == "merge"]
    if len(new):
        conn.execute(_MERGE.insert(), [_merge_row(r, at, actor) for r in new.itertuples()])


def _audit(change: dict[str, Any], at: datetime, actor: str) -> dict[str, Any]:
    return {
        "change_id": f"merge:{change['source_id']}:{change['field']}",
        "customer_id": change["customer_id"],
        "field": change["field"],
        "old_value": _text(change["old_value"]),
        "new_value": _text(change["new_value"]),
        "changed_at": at,
        "actor": actor,
    }


def _merge_row(row: Any, at: datetime, actor: str) -> dict[str, Any]:
    reason = f"{row.reason}: {row.evidence}" if row.evidence else row.reason
    return {
        "merged_id": row.merged_id,
        "surviving_id": row.surviving_id,
        "merged_at": at,
        "reason": reason,
        "actor": actor,
    }


def _tables_frame(changes: list[TableChange]) -> pd.DataFrame:
    rows = [
        (c.table, c.moved, c.combined, c.left) for c in changes if c.moved or c.combined or c.left
    ]
    frame = pd.DataFrame(rows, columns=["table", "moved", "combined", "left"])
    return frame.astype({"moved": "int64", "combined": "int64", "left": "int64"}).set_index("table")


def merge_customers(
    store: Store, plan: pd.DataFrame, *, at: datetime, actor: str, dry_run: bool = False
) -> MergeResult:
    """Merge duplicate customers into their survivors, all in one transaction.

    Parameters
    ----------
    store : Store
        The store to change.
    plan : pandas.DataFrame
        Columns ``merged_id`` and ``surviving_id``, optionally ``evidence`` and
        ``reason`` (as returned by :func:`crm_ml.store.identity.plan_merges`).
    at : datetime
        When the merge is recorded (``customer_merge.merged_at``); naive means UTC.
    actor : str
        Who decided it, for the audit trail.
    dry_run : bool
        Work everything out but write nothing; ``MergeResult.summary()`` says what
        would happen.

    Returns
    -------
    MergeResult

    Raises
    ------
    ValidationError
        If the plan lacks columns, merges a customer into itself or into two
        customers, forms a cycle, contradicts an earlier merge, or merges a
        record erased on request.
    NotFoundError
        If the plan names customers that are not in the store.
    """
    at = as_store_time(at, name="at")
    frame = _check_plan(plan)
    ids = set(frame["merged_id"]) | set(frame["surviving_id"])
    with store.connect() if dry_run else store.begin() as conn:
        check_store(conn)
        customers = _load_customers(conn, ids)
        frame = _resolve(frame, customers)
        _check_not_erased(conn, frame)
        mapping = _rekey_mapping(frame, customers)
        changes = compute_rekey(conn, mapping)
        profile = _profile_changes(frame, customers)
        if not dry_run:
            _write(conn, frame, customers, mapping, changes, profile, at=at, actor=actor)
    result = MergeResult(
        merges=frame.loc[:, list(MERGE_COLUMNS)],
        tables=_tables_frame(changes),
        profile_changes=pd.DataFrame(profile, columns=list(PROFILE_COLUMNS)),
        dry_run=dry_run,
    )
    log.info("%s", result.summary().splitlines()[0])
    return result
