"""Turning the entries a caller posts into checked ledger rows, before the store is read.

Each entry is checked on its own (columns, blank keys, timestamps, a whole or
non-zero amount, the sign its kind requires) and repeats of one ``entry_id``
within a call are collapsed, or refused when their content differs. The rules
every posting obeys, and the checks against the store, are in
:mod:`crm_ml.store.loyalty`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crm_ml.errors import LedgerError, ValidationError
from crm_ml.store._timestamps import as_store_time

if TYPE_CHECKING:
    from crm_ml.store.loyalty import LedgerSpec


def _as_frame(entries: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(entries, pd.DataFrame):
        return entries.reset_index(drop=True)
    return pd.DataFrame([dict(e) for e in entries])


def _check_columns(frame: pd.DataFrame, spec: LedgerSpec) -> None:
    required = ["entry_id", "customer_id", "posted_at", "kind", spec.amount]
    known = set(spec.sa_table.columns.keys())
    missing = [c for c in required if c not in frame.columns]
    unknown = sorted(map(str, set(frame.columns) - known))
    if missing or unknown:
        raise ValidationError(
            f"{spec.unit.capitalize()} postings need columns {', '.join(required)} "
            f"(optional: {', '.join(sorted(known - set(required)))}); "
            f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}."
        )


def _blank(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _amount(row: Mapping[str, Any], spec: LedgerSpec) -> int | float:
    value, entry = row[spec.amount], row["entry_id"]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if np.isnan(number) or number == 0:
        raise LedgerError(f"Entry {entry}: {spec.amount}={value!r}; expected a non-zero number.")
    if spec.integer:
        if not number.is_integer():
            raise LedgerError(f"Entry {entry}: {spec.unit} must be whole numbers, got {value!r}.")
        return int(number)
    return number


def _check_sign(row: Mapping[str, Any], spec: LedgerSpec) -> None:
    kind, entry, amount = row["kind"], row["entry_id"], row[spec.amount]
    if kind not in spec.signs:
        raise LedgerError(
            f"Entry {entry}: kind {kind!r} is not a {spec.unit} kind; "
            f"expected one of {', '.join(spec.signs)}."
        )
    sign = spec.signs[kind]
    if sign * amount < 0:
        expected = "positive" if sign > 0 else "negative"
        raise LedgerError(
            f"Entry {entry}: {kind} postings must be {expected}, got {amount}. "
            "Use an adjust posting for corrections."
        )


def _row(raw: Mapping[str, Any], spec: LedgerSpec) -> dict[str, Any]:
    """One posting as the table stores it: Python values, naive UTC timestamps."""
    row: dict[str, Any] = {c.name: None for c in spec.sa_table.columns}
    row.update({k: (None if _blank(v) else v) for k, v in raw.items()})
    for column in ("entry_id", "customer_id"):
        if row[column] is None:
            raise ValidationError(f"A {spec.unit} posting has a blank {column}: {dict(raw)}.")
        row[column] = str(row[column])
    for column in ("posted_at", "expires_at"):
        if column in row and (column == "posted_at" or row[column] is not None):
            row[column] = as_store_time(row[column], name=f"{row['entry_id']}.{column}")
    row[spec.amount] = _amount(row, spec)
    _check_sign(row, spec)
    return row


def _prepare(entries: pd.DataFrame | Iterable[Mapping[str, Any]], spec: LedgerSpec) -> list[dict]:
    frame = _as_frame(entries)
    if frame.empty:
        return []
    _check_columns(frame, spec)
    unique: dict[str, dict[str, Any]] = {}
    for raw in frame.to_dict("records"):
        row = _row({str(k): v for k, v in raw.items()}, spec)
        seen = unique.setdefault(row["entry_id"], row)
        if seen != row:
            raise LedgerError(
                f"Entry {row['entry_id']} appears twice in this posting with different content "
                f"({_differences(seen, row)}); an entry_id names one posting."
            )
    return list(unique.values())


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    fields = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}={old.get(k)!r} then {new[k]!r}" for k in fields)
