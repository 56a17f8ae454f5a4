"""Checks that need the store, and the plan of what a load will change.

Run inside the load's transaction, so that what was checked is what gets
written. Keys are looked up for the batch only (a staged key table joined to
the target), never by reading whole tables into memory.

- References: an order for an unknown customer is rejected; the referenced
  rows may be in the store or, for a table that references itself, in the file.
- Typed custom values: ``custom_field_value.value`` is text in the store, but
  must read as its field's ``data_type`` (number, date, yes/no).
- Existing keys: in a dimension table a changed row is updated (and for
  ``customer`` each changed field is recorded in ``customer_change``); in a
  ledger or fact table an existing key with different content is rejected —
  ledgers are append-only, so a repeated points ``entry_id`` never credits twice,
  and the history tables (``customer_merge``, ``customer_change``) are ledgers too —
  except that a column arriving after the row (a refund on the line it returns,
  a coupon's redemption) may be filled in once where the store has none.
- Lost leading zeros: a new id of a dimension table that is a stored id without
  its leading zeros (``1`` for ``0001``) is rejected, not added as a new row; a
  reference given so (an order's or a merge log's customer) is rejected naming
  the stored id, rather than as unknown.

The rules of the merge log and of account manager assignments have their own
modules: :mod:`crm_ml.store.merge_log`, :mod:`crm_ml.store.owner_overlaps`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from crm_ml.store.bulk import coerce, fetch, has_rows, select_matching, staged
from crm_ml.store.parsing import Parsed, parse_bool, parse_date, parse_float
from crm_ml.store.rejects import RejectLog
from crm_ml.store.validation import Reference, TableSpec, table_spec

AUDITED_TABLES = frozenset({"customer"})


@dataclass
class Plan:
    """What a load will write.

    Attributes
    ----------
    inserts : pandas.DataFrame
        New rows, every table column.
    updates : pandas.DataFrame
        Changed rows of a dimension table (key and the columns the source gave),
        or ledger rows filling in later columns (key and those columns).
    unchanged : int
        Rows already in the store exactly as given.
    changes : pandas.DataFrame
        ``customer_change`` rows (``change_id, customer_id, field, old_value,
        new_value, changed_at, actor``), empty for other tables.
    """

    inserts: pd.DataFrame
    updates: pd.DataFrame
    unchanged: int
    changes: pd.DataFrame


def kinds_of(spec: TableSpec) -> dict[str, str]:
    """Column name → kind, for :mod:`crm_ml.store.bulk`."""
    return {c.name: c.kind for c in spec.columns}


def existing_rows(
    conn: Connection, table: str, keys: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """Rows of ``table`` matching ``keys`` (only ``columns``), typed like parsed values."""
    all_kinds = kinds_of(table_spec(table))
    kinds = {c: all_kinds[c] for c in columns}
    if keys.empty or not has_rows(conn, table):
        return coerce(pd.DataFrame({c: pd.Series(dtype=object) for c in columns}), kinds)
    with staged(conn, table, keys.drop_duplicates(), all_kinds) as stage:
        return select_matching(conn, table, stage, list(keys.columns), kinds)


def _isin(values: pd.Series, known: pd.Series) -> np.ndarray:
    """Vectorised membership (pandas' ``isin`` on Arrow strings builds Python lists)."""
    value_set = pa.array(known.dropna().astype("str").unique(), type=pa.string())
    found = pc.is_in(pa.array(values.astype("str"), type=pa.string()), value_set=value_set)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _check_reference(
    conn: Connection, spec: TableSpec, ref: Reference, clean: pd.DataFrame, log: RejectLog
) -> None:
    values = clean[ref.column].where(~log.rejected)
    distinct = pd.DataFrame({ref.target_column: values.dropna().unique()}).astype("str")
    known = existing_rows(conn, ref.target_table, distinct, [ref.target_column])[ref.target_column]
    if ref.target_table == spec.name:
        known = pd.concat([known, clean[ref.target_column].where(~log.rejected)])
    missing = values.notna().to_numpy() & ~_isin(values, known)
    # A spreadsheet's 1 for a stored 0001 is named as such, not as an unknown customer.
    lost = _reject_lost_zeros_of(
        conn, ref.target_table, ref.target_column, ref.column, clean, missing, log
    )
    missing &= ~lost
    log.add(
        missing,
        ref.column,
        "reference",
        clean[ref.column],
        f"unknown {ref.target_table} {{value}}: no {ref.target_table}.{ref.target_column} has "
        f"this value in the store or this file; import {ref.target_table} first",
    )


def check_references(
    conn: Connection, spec: TableSpec, clean: pd.DataFrame, log: RejectLog
) -> None:
    """Reject rows that name a row missing from both the store and the file.

    A missing id that is a stored one without its leading zeros (``1`` for
    ``0001``) is rejected as such, naming the stored id, as
    :func:`reject_lost_zeros` does for a dimension table's own ids: in the
    tables that name a customer (orders, consent …) and in a moved store's merge
    log and profile history (``customer_merge``, ``customer_change``) alike.
    """
    for ref in spec.references:
        _check_reference(conn, spec, ref, clean, log)


#: How a custom field's ``data_type`` is read; text needs no check.
_CUSTOM_PARSERS = {
    "number": (parse_float, "a number, e.g. 42 or 3.5"),
    "date": (parse_date, "a date YYYY-MM-DD"),
    "bool": (parse_bool, "yes/no: true/false, 1/0, Y/N or 是/否"),
}


def _custom_type_errors(values: pd.Series, data_type: str) -> np.ndarray:
    parse = _CUSTOM_PARSERS[data_type][0]
    parsed: Parsed = parse(values)
    bad = np.zeros(len(values), dtype=bool)
    for problem in parsed.problems:
        bad |= problem.mask
    return bad


def check_custom_values(
    conn: Connection, spec: TableSpec, clean: pd.DataFrame, log: RejectLog
) -> None:
    """Reject ``custom_field_value`` rows whose value does not read as its field's type."""
    if spec.name != "custom_field_value":
        return
    accepted = ~log.rejected & clean["value"].notna().to_numpy()
    ids = pd.DataFrame({"field_id": clean.loc[accepted, "field_id"].unique()}).astype("str")
    fields = existing_rows(conn, "custom_field", ids, ["field_id", "data_type", "label"])
    for field_id, data_type, label in (
        fields[["field_id", "data_type", "label"]].astype("str").itertuples(index=False, name=None)
    ):
        if data_type not in _CUSTOM_PARSERS:
            continue
        rows = np.flatnonzero(accepted & (clean["field_id"] == field_id).to_numpy())
        bad = np.zeros(len(clean), dtype=bool)
        bad[rows] = _custom_type_errors(clean["value"].iloc[rows], data_type)
        log.add(
            bad,
            "value",
            "type",
            clean["value"],
            f"{{value}} does not fit custom field {field_id} ({label}), "
            f"whose data_type is {data_type}: expected {_CUSTOM_PARSERS[data_type][1]}",
        )


def check_unique(conn: Connection, spec: TableSpec, clean: pd.DataFrame, log: RejectLog) -> None:
    """Reject rows whose unique value (``tier.level``) belongs to another stored row."""
    for column in spec.unique:
        accepted = clean.loc[~log.rejected, [*spec.key, column]].dropna()
        stored = existing_rows(conn, spec.name, accepted[[column]], [*spec.key, column])
        merged = clean[[*spec.key, column]].merge(
            stored, on=column, how="left", suffixes=("", "_stored"), indicator=True
        )
        other = np.zeros(len(clean), dtype=bool)
        for key in spec.key:
            other |= np.asarray(merged[key].ne(merged[f"{key}_stored"]).fillna(False), dtype=bool)
        taken = (merged["_merge"] == "both").to_numpy() & other & ~log.rejected
        log.add(
            taken,
            column,
            "unique",
            clean[column].astype("str"),
            f"{column} {{value}} already belongs to another {spec.name} in the store",
        )


def _differs(new: pd.Series, old: pd.Series) -> np.ndarray:
    same = (new == old).fillna(False) | (new.isna() & old.isna())
    return ~np.asarray(same, dtype=bool)


def _positions(accepted: pd.DataFrame, stored: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Row of ``stored`` holding each accepted row's key, or -1 (keys are unique in both)."""
    if len(key) == 1:
        return pd.Index(stored[key[0]]).get_indexer(accepted[key[0]])
    return pd.MultiIndex.from_frame(stored[key]).get_indexer(
        pd.MultiIndex.from_frame(accepted[key])
    )


def _compare(
    accepted: pd.DataFrame, stored: pd.DataFrame, positions: np.ndarray, columns: list[str]
) -> pd.DataFrame:
    """Which given columns of each accepted row differ from its stored version.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``accepted``; one boolean column per compared column (False
        for rows not in the store). Built a column at a time to bound memory.
    """
    found = positions >= 0
    diffs = {}
    for column in columns:
        differs = np.zeros(len(accepted), dtype=bool)
        old = stored[column].take(positions[found]).reset_index(drop=True)
        new = accepted[column][found].reset_index(drop=True)
        differs[found] = _differs(new, old)
        diffs[column] = differs
    return pd.DataFrame(diffs, index=accepted.index)


def _as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object).where(values.notna(), None)
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "true", False: "false"}).astype(object).where(values.notna(), None)
    return values.astype("str").astype(object).where(values.notna(), None)


def customer_changes(
    new: pd.DataFrame,
    old: pd.DataFrame,
    diffs: pd.DataFrame,
    *,
    batch_id: str,
    changed_at: pd.Timestamp,
) -> pd.DataFrame:
    """One ``customer_change`` row per changed field of each updated customer.

    ``new``, ``old`` and ``diffs`` are aligned row by row: the customers as given,
    as stored, and which of their fields differ.

    Returns
    -------
    pandas.DataFrame
        RangeIndex; columns ``change_id, customer_id, field, old_value, new_value,
        changed_at, actor``.
    """
    parts = [
        pd.DataFrame(
            {
                "customer_id": new["customer_id"].to_numpy()[changed],
                "field": field,
                "old_value": _as_text(old[field]).to_numpy()[changed],
                "new_value": _as_text(new[field]).to_numpy()[changed],
            }
        )
        for field in diffs.columns
        if (changed := diffs[field].to_numpy()).any()
    ]
    if not parts:
        return pd.DataFrame()
    changes = pd.concat(parts, ignore_index=True)
    keys = zip(changes["customer_id"], changes["field"], strict=True)
    changes.insert(
        0, "change_id", [hashlib.sha1(f"{batch_id}|{c}|{f}".encode()).hexdigest() for c, f in keys]
    )
    changes["changed_at"] = changed_at
    changes["actor"] = f"import:{batch_id}"
    return changes.astype({"changed_at": "datetime64[us]"})


def _padded_ids(conn: Connection, table: str, column: str, ids: pd.Series) -> pd.Series:
    """Find stored ids that read as ``ids`` once their leading zeros are removed.

    Returns
    -------
    pandas.Series
        Indexed by the given id (only those not stored themselves); the stored id.
    """
    quote = conn.dialect.identifier_preparer.quote
    t, c = quote(table), quote(column)
    with staged(conn, table, pd.DataFrame({column: ids}), {column: "text"}) as stage:
        found = fetch(
            conn,
            f"SELECT s.{c} AS given_id, MIN(t.{c}) AS stored_id FROM {t} t "
            f"JOIN {stage} s ON LTRIM(t.{c}, '0') = s.{c} WHERE SUBSTR(t.{c}, 1, 1) = '0' "
            f"AND NOT EXISTS (SELECT 1 FROM {t} x WHERE x.{c} = s.{c}) GROUP BY s.{c}",
            {"given_id": "text", "stored_id": "text"},
        )
    return found.set_index("given_id")["stored_id"]


def _reject_lost_zeros_of(
    conn: Connection,
    table: str,
    target: str,
    column: str,
    clean: pd.DataFrame,
    rows: np.ndarray,
    log: RejectLog,
) -> np.ndarray:
    """Reject ``rows`` whose ``column`` is a ``table.target`` id without its leading zeros.

    A spreadsheet re-saving a file turns ``0001`` into ``1``. The message names
    the id stored in ``table``, so that the file can be fixed rather than the
    customer (product, store …) looked for.

    Returns
    -------
    numpy.ndarray
        Per row of ``clean``, whether it was rejected here.
    """
    ids = clean[column].where(rows)
    number = ids.str.fullmatch(r"[1-9][0-9]*").fillna(False).to_numpy(dtype=bool)
    if not number.any() or not has_rows(conn, table):
        return np.zeros(len(clean), dtype=bool)
    padded = _padded_ids(conn, table, target, pd.Series(ids[number].unique(), dtype="str"))
    stored = ids.map(padded).where(number)
    lost = stored.notna().to_numpy()
    messages = np.empty(len(clean), dtype=object)
    messages[lost] = [
        f"{{value}} looks like {s!r} with its leading zeros lost (a spreadsheet does this): "
        f"{table} {s!r} is in the store; re-export with the {column} column as text"
        for s in stored[lost]
    ]
    log.add(lost, column, "leading_zeros", clean[column], messages)
    return lost


def reject_lost_zeros(
    conn: Connection, spec: TableSpec, clean: pd.DataFrame, log: RejectLog
) -> None:
    """Reject new ids of a dimension table that are stored ids without their leading zeros.

    A spreadsheet re-saving a file turns ``0001`` into ``1``; loading it would add
    every row again as a new customer (product, store …) beside the real one.
    (References get the same check: see :func:`check_references`.)
    """
    column = spec.key[0]
    if spec.kind != "dimension" or len(spec.key) > 1 or spec.column(column).kind != "text":
        return
    _reject_lost_zeros_of(conn, spec.name, column, column, clean, ~log.rejected, log)


def plan_load(
    conn: Connection,
    spec: TableSpec,
    clean: pd.DataFrame,
    present: tuple[str, ...],
    log: RejectLog,
    *,
    batch_id: str,
    loaded_at: pd.Timestamp,
    timezone: str,
    skip: np.ndarray | None = None,
) -> Plan:
    """Split the accepted rows into inserts, updates and unchanged.

    Rejects ids that lost their leading zeros, and ledger rows that would change a
    stored row beyond filling in a column that arrives later (``spec.filled_later``);
    ``timezone``, the zone naive times were read in, is named when it explains them.
    Rows where ``skip`` is true are left out without being rejected (an erased
    customer's, :func:`crm_ml.store.erased.erased_rows`).
    """
    key = list(spec.key)
    compared = [c for c in present if c not in key]
    reject_lost_zeros(conn, spec, clean, log)
    left_out = log.rejected if skip is None else log.rejected | skip
    accepted = clean.iloc[np.flatnonzero(~left_out)] if left_out.any() else clean
    stored = existing_rows(conn, spec.name, accepted[key], key + compared)
    if stored.empty:  # all new: skip pairing a million rows with nothing
        return Plan(accepted, accepted.iloc[:0][key + compared], 0, pd.DataFrame())
    positions = _positions(accepted, stored, key)
    diffs = _compare(accepted, stored, positions, compared)
    new_rows = accepted.iloc[np.flatnonzero(positions < 0)]
    if spec.kind == "ledger":
        updates, unchanged = _plan_ledger(
            spec, accepted, stored, positions, diffs, log, timezone=timezone
        )
        return Plan(new_rows, updates, unchanged, pd.DataFrame())
    changed = np.flatnonzero(diffs.to_numpy().any(axis=1))
    unchanged = int((positions >= 0).sum()) - len(changed)
    updates = accepted.iloc[changed][key + compared]
    changes = pd.DataFrame()
    if spec.name in AUDITED_TABLES:
        old = stored.iloc[positions[changed]]
        changes = customer_changes(
            updates, old, diffs.iloc[changed], batch_id=batch_id, changed_at=loaded_at
        )
    return Plan(new_rows, updates, unchanged, changes)


def _blank(values: pd.Series, default: object) -> np.ndarray:
    """Whether each value is not there yet: missing, or the default (no refund, no response)."""
    blank = np.array(values.isna(), dtype=bool)
    if default is not None:
        blank |= np.asarray((values == default).fillna(False), dtype=bool)
    return blank


def _fills(
    spec: TableSpec,
    accepted: pd.DataFrame,
    stored: pd.DataFrame,
    positions: np.ndarray,
    diffs: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the differences of ledger rows into fill-ins and conflicts.

    A fill-in is a column of ``spec.filled_later`` blank in the store and given in
    the file. A difference between two blanks (``NULL`` and a default ``0``) is neither.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(fills, conflicts)``, both shaped like ``diffs``.
    """
    found = positions >= 0
    fills = pd.DataFrame(False, index=diffs.index, columns=diffs.columns)
    conflicts = diffs.copy()
    for column in diffs.columns.intersection(list(spec.filled_later)):
        default = spec.column(column).default
        was_blank = np.ones(len(accepted), dtype=bool)
        was_blank[found] = _blank(stored[column].take(positions[found]), default)
        is_blank = _blank(accepted[column], default)
        fills[column] = diffs[column].to_numpy() & was_blank & ~is_blank
        conflicts[column] = diffs[column].to_numpy() & ~was_blank
    return fills, conflicts


def _plan_ledger(
    spec: TableSpec,
    accepted: pd.DataFrame,
    stored: pd.DataFrame,
    positions: np.ndarray,
    diffs: pd.DataFrame,
    log: RejectLog,
    *,
    timezone: str,
) -> tuple[pd.DataFrame, int]:
    """Reject stored ledger rows given with other content; fill in later columns of the rest.

    Returns
    -------
    tuple
        The updates (key and the given ``filled_later`` columns of rows that fill
        one in) and how many stored rows are unchanged.
    """
    fills, conflicts = _fills(spec, accepted, stored, positions, diffs)
    conflicted = np.flatnonzero(conflicts.to_numpy().any(axis=1))
    filling = np.flatnonzero(fills.to_numpy().any(axis=1) & ~conflicts.to_numpy().any(axis=1))
    old = stored.iloc[positions[conflicted]].set_axis(accepted.index[conflicted])
    _reject_conflicts(
        spec, accepted.iloc[conflicted], old, conflicts.iloc[conflicted], log, timezone=timezone
    )
    later = [c for c in spec.filled_later if c in diffs.columns]
    updates = accepted.iloc[filling][[*spec.key, *later]]
    unchanged = int((positions >= 0).sum()) - len(conflicted) - len(filling)
    return updates, unchanged


#: What to do instead of changing a stored ledger row, by table.
_CORRECTIONS = {
    "points_ledger": "to correct it, post an adjust entry with a new entry_id",
    "stored_value_ledger": "to correct it, post an adjust entry with a new entry_id",
    "consent": "a new decision is a new row with a later updated_at",
    "customer_merge": (
        "a customer is merged once and a merge is never undone; to move its records on, "
        "merge its survivor into the other customer (`crm-ml customers merge`)"
    ),
    "customer_change": "the audit keeps each change as recorded; a new change has a new change_id",
}
_NO_CORRECTION = (
    "an import cannot change it, and the row must not be imported again under a new key "
    "(that would count it twice)"
)


def _append_only(spec: TableSpec) -> str:
    """Say what an import may do to a stored row of ``spec``'s table."""
    if not spec.filled_later:
        return f"{spec.name} is append-only"
    return (
        f"{spec.name} is append-only except that {', '.join(spec.filled_later)} may be "
        "filled in once, where the store has none yet"
    )


def _values(spec: TableSpec, frame: pd.DataFrame, conflicts: pd.DataFrame) -> list[str]:
    """Per row, ``refund_amount 50.0, refunded_at blank`` for its conflicting columns.

    Timestamps are labelled UTC: the store holds them so, and the file's were converted.
    """
    text = {c: _as_text(frame[c]).to_numpy() for c in conflicts.columns}
    zone = {c: " UTC" if spec.column(c).kind == "timestamp" else "" for c in conflicts.columns}
    return [
        ", ".join(
            f"{c} {text[c][i] + zone[c] if text[c][i] else 'blank'}" for c in conflicts.columns[row]
        )
        for i, row in enumerate(conflicts.to_numpy())
    ]


#: The most two time zones' clocks differ (UTC-12 to UTC+14).
_ZONES_APART = pd.Timedelta(hours=26)


def _zone_shift(
    spec: TableSpec, new: pd.DataFrame, old: pd.DataFrame, conflicts: pd.DataFrame
) -> pd.Timedelta | None:
    """Return the whole number of hours by which every conflicting value is off the store.

    Only when all the conflicts are in timestamps: the mark of a file read in another
    time zone than the one that loaded the store.
    """
    shifts = []
    for column in conflicts.columns:
        rows = conflicts[column].to_numpy()
        if not rows.any():
            continue
        if spec.column(column).kind != "timestamp":
            return None
        shifts.append((new[column] - old[column])[rows])
    shift = pd.concat(shifts)
    first = shift.iloc[0]
    if pd.isna(first) or first == pd.Timedelta(0) or first % pd.Timedelta(hours=1):
        return None
    if abs(first) > _ZONES_APART:  # days apart: another value, not another time zone
        return None
    return first if bool((shift == first).all()) else None


#: Zones named in the hint for the offset the store's times were read at.
_KNOWN_OFFSETS = {0: "UTC", 8: "Asia/Shanghai"}


def _first_shifted(old: pd.DataFrame, conflicts: pd.DataFrame) -> pd.Timestamp:
    """Return the stored time of the first conflicting timestamp (all conflicts are times)."""
    column = next(c for c in conflicts.columns if conflicts[c].any())
    return pd.Timestamp(old[column][conflicts[column].to_numpy()].iloc[0])


def _zone_hint(shift: pd.Timedelta, rows: int, timezone: str, at: pd.Timestamp) -> str:
    """Say which time zone the store's times were read in, from the shift and this import's zone.

    A naive time read in a zone ``o`` hours ahead of UTC is stored ``o`` hours
    earlier, so the file's instants minus the store's (``shift``) is the earlier
    zone's offset minus this one's, at the time of the first conflicting row.
    """
    hours = shift / pd.Timedelta(hours=1)
    which = "this row is" if rows == 1 else f"all {rows} such rows are"
    offset = ZoneInfo(timezone).utcoffset(at.to_pydatetime()) or pd.Timedelta(0)
    theirs = offset / pd.Timedelta(hours=1) + hours
    named = _KNOWN_OFFSETS.get(int(theirs)) if theirs.is_integer() else None
    earlier = f"UTC{theirs:+g}" + (f", e.g. --timezone {named}" if named else "")
    return (
        f". Note: {which} {abs(hours):g} h {'later' if hours > 0 else 'earlier'} in the file "
        "than in the store: was the file read in another time zone than the import that "
        f"loaded it? This import read times without an offset in {timezone} (--timezone); "
        f"the store's match them read at {earlier}. Import the file with the earlier "
        "import's --timezone"
    )


def _conflict_messages(
    spec: TableSpec,
    new: pd.DataFrame,
    old: pd.DataFrame,
    conflicts: pd.DataFrame,
    *,
    timezone: str,
) -> list[str]:
    """One message per conflicting row; the first adds a hint when a time zone explains them."""
    rule = _append_only(spec)
    advice = _CORRECTIONS.get(spec.name, _NO_CORRECTION)
    messages = [
        f"{{value}} is already in the store with a different "
        f"{', '.join(conflicts.columns[row])}: {rule} (a repeated key is never applied "
        f"twice; the store has {stored}, the file {given}); {advice}"
        for row, stored, given in zip(
            conflicts.to_numpy(),
            _values(spec, old, conflicts),
            _values(spec, new, conflicts),
            strict=True,
        )
    ]
    shift = _zone_shift(spec, new, old, conflicts)
    if shift is not None:
        messages[0] += _zone_hint(shift, len(messages), timezone, _first_shifted(old, conflicts))
    return messages


def _reject_conflicts(
    spec: TableSpec,
    new: pd.DataFrame,
    old: pd.DataFrame,
    conflicts: pd.DataFrame,
    log: RejectLog,
    *,
    timezone: str,
) -> None:
    """Reject ledger rows ``new`` that would change their stored version ``old``."""
    if new.empty:
        return
    rows = len(log.lines)
    positions = new.index.to_numpy()
    mask = np.zeros(rows, dtype=bool)
    mask[positions] = True
    messages = np.empty(rows, dtype=object)
    messages[positions] = _conflict_messages(spec, new, old, conflicts, timezone=timezone)
    keys = np.empty(rows, dtype=object)
    keys[positions] = new[list(spec.key)].astype("str").agg(" / ".join, axis=1).to_numpy()
    log.add(mask, "+".join(spec.key), "append_only", pd.Series(keys), messages)
