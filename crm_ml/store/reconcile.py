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
  ledgers are append-only, so a repeated points ``entry_id`` never credits twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from crm_ml.store.bulk import coerce, has_rows, select_matching, staged
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
        Changed rows of a dimension table: key and the columns the source gave.
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


def _existing(conn: Connection, table: str, keys: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
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
    known = _existing(conn, ref.target_table, distinct, [ref.target_column])[ref.target_column]
    if ref.target_table == spec.name:
        known = pd.concat([known, clean[ref.target_column].where(~log.rejected)])
    missing = values.notna().to_numpy() & ~_isin(values, known)
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
    """Reject rows that name a row missing from both the store and the file."""
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
    fields = _existing(conn, "custom_field", ids, ["field_id", "data_type", "label"])
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
        stored = _existing(conn, spec.name, accepted[[column]], [*spec.key, column])
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


def plan_load(
    conn: Connection,
    spec: TableSpec,
    clean: pd.DataFrame,
    present: tuple[str, ...],
    log: RejectLog,
    *,
    batch_id: str,
    loaded_at: pd.Timestamp,
) -> Plan:
    """Split the accepted rows into inserts, updates and unchanged; reject ledger conflicts."""
    key = list(spec.key)
    compared = [c for c in present if c not in key]
    accepted = clean.iloc[np.flatnonzero(~log.rejected)] if log.rejected.any() else clean
    stored = _existing(conn, spec.name, accepted[key], key + compared)
    if stored.empty:  # all new: skip pairing a million rows with nothing
        return Plan(accepted, accepted.iloc[:0][key + compared], 0, pd.DataFrame())
    positions = _positions(accepted, stored, key)
    diffs = _compare(accepted, stored, positions, compared)
    found = positions >= 0
    changed = np.flatnonzero(diffs.to_numpy().any(axis=1))
    unchanged = int(found.sum()) - len(changed)
    new_rows = accepted.iloc[np.flatnonzero(~found)]
    if spec.kind == "ledger":
        _reject_conflicts(spec, accepted.iloc[changed], diffs.iloc[changed], log)
        return Plan(new_rows, accepted.iloc[:0][key + compared], unchanged, pd.DataFrame())
    updates = accepted.iloc[changed][key + compared]
    changes = pd.DataFrame()
    if spec.name in AUDITED_TABLES:
        old = stored.iloc[positions[changed]]
        changes = customer_changes(
            updates, old, diffs.iloc[changed], batch_id=batch_id, changed_at=loaded_at
        )
    return Plan(new_rows, updates, unchanged, changes)


def _reject_conflicts(
    spec: TableSpec, conflicts: pd.DataFrame, diffs: pd.DataFrame, log: RejectLog
) -> None:
    """Reject ledger rows whose key is stored with other content: ledgers are append-only."""
    if conflicts.empty:
        return
    rows = len(log.lines)
    positions = conflicts.index.to_numpy()
    mask = np.zeros(rows, dtype=bool)
    mask[positions] = True
    messages = np.empty(rows, dtype=object)
    messages[positions] = [
        f"{{value}} is already in the store with a different {', '.join(diffs.columns[row])}: "
        f"{spec.name} is append-only (a repeated key is never applied twice); "
        "post a correcting entry with a new key instead"
        for row in diffs.to_numpy()
    ]
    keys = np.empty(rows, dtype=object)
    keys[positions] = conflicts[list(spec.key)].astype("str").agg(" / ".join, axis=1).to_numpy()
    log.add(mask, "+".join(spec.key), "append_only", pd.Series(keys), messages)
