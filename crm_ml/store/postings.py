"""Turning the entries a caller posts into checked ledger rows, before the store is read.

Each entry is checked on its own (columns, blank keys, timestamps, a whole or
non-zero amount, the sign its kind requires) and repeats of one ``entry_id``
within a call are collapsed, or refused when their content differs. The rules
every posting obeys, and the checks against the store, are in
:mod:`crm_ml.store.loyalty`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table

from crm_ml.errors import LedgerError, ValidationError
from crm_ml.store._timestamps import as_store_time
from crm_ml.store.schema import Base


@dataclass(frozen=True)
class LedgerSpec:
    """How one ledger table behaves.

    Attributes
    ----------
    table : str
        Table name.
    amount : str
        The signed amount column.
    signs : Mapping[str, int]
        Kind → required sign (+1, -1, or 0 for either).
    debits : tuple of str
        Kinds that may not exceed the available balance.
    unit : str
        Word used in messages.
    balance : str
        Name of the balance series.
    integer : bool
        Whether amounts must be whole numbers.
    """

    table: str
    amount: str
    signs: Mapping[str, int]
    debits: tuple[str, ...]
    unit: str
    balance: str
    integer: bool

    @property
    def sa_table(self) -> Table:
        """The SQLAlchemy table."""
        return Base.metadata.tables[self.table]

    def wrong_sign(self, kind: pd.Series, amount: pd.Series) -> pd.Series:
        """Return True where ``amount`` lacks the sign its ``kind`` requires (zero included)."""
        broken = pd.Series(False, index=kind.index)
        for name, sign in self.signs.items():
            if sign:
                unsigned = amount <= 0 if sign > 0 else amount >= 0
                broken |= (kind == name) & unsigned
        return broken.fillna(False).astype(bool)

    def sign_rules(self) -> str:
        """Say which sign each kind takes: ``earn is positive, redeem and expire are negative…``."""
        words = {1: "positive", -1: "negative", 0: "either"}
        parts = []
        for sign, word in words.items():
            kinds = [name for name, s in self.signs.items() if s == sign]
            if kinds:
                verb = "" if sign == 0 else " are" if len(kinds) > 1 else " is"
                parts.append(f"{' and '.join(kinds)}{verb} {word}")
        return ", ".join(parts)


POINTS = LedgerSpec(
    "points_ledger",
    "points",
    {"earn": 1, "redeem": -1, "expire": -1, "adjust": 0},
    ("redeem",),
    "points",
    "points_balance",
    True,
)
STORED_VALUE = LedgerSpec(
    "stored_value_ledger",
    "amount",
    {"top_up": 1, "spend": -1, "refund": 1, "adjust": 0},
    ("spend",),
    "stored value",
    "stored_value_balance",
    False,
)
#: The ledgers by table: their sign rules check postings here and imported rows in
#: :mod:`crm_ml.store.validation`, so that both refuse the same rows.
LEDGERS = {spec.table: spec for spec in (POINTS, STORED_VALUE)}


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
