"""Table-specific normalisation applied to raw columns before they are parsed.

Consent answers are mapped to granted/withdrawn/unknown (unknown means no);
identity values are normalised by their kind (phones to E.164, emails to
lower case); ids (``*_id`` columns and references) are checked for numbers a
spreadsheet reformatted (``1.38E+10``). Each works on whole columns, calling the
per-value functions of :mod:`crm_ml.store.normalize` once per distinct value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from crm_ml.store.normalize import (
    is_recognised_consent,
    normalize_consent,
    normalize_email,
    normalize_id,
    normalize_phone,
)
from crm_ml.store.parsing import as_text
from crm_ml.store.rejects import RejectLog
from crm_ml.store.schema import SOURCE_TABLES
from crm_ml.store.validation import table_spec

Normalizer = Callable[[pd.DataFrame, RejectLog, list[str]], pd.Series]

_CN_MOBILE = r"^1[3-9]\d{9}$"
#: How many unrecognised consent answers a warning quotes.
QUOTED = 3


def consent_status(frame: pd.DataFrame, log: RejectLog, warnings: list[str]) -> pd.Series:
    """Map consent answers (``Y``, ``是``, ``1``, blank …); unrecognised ones become ``unknown``."""
    text = as_text(frame["status"])
    distinct = text.dropna().unique()
    mapped = text.map({v: normalize_consent(v) for v in distinct}).fillna("unknown")
    unknown = np.array([not is_recognised_consent(v) for v in distinct], dtype=bool)
    strange = text.isin(distinct[unknown]).to_numpy()
    if strange.any():
        examples = ", ".join(
            f"{log.unit} {line}: {value!r}"
            for line, value in zip(log.lines[strange][:QUOTED], text[strange][:QUOTED], strict=True)
        )
        warnings.append(
            f"{int(strange.sum())} consent answer(s) in column status were not recognised "
            f"({examples}) and were stored as 'unknown', which means no consent."
        )
    return mapped.astype("str")


def _map_distinct(values: pd.Series, function: Callable[[str], str]) -> tuple[pd.Series, pd.Series]:
    """Apply ``function`` once per distinct value; return (normalised, error message or NA)."""
    results: dict[str, str] = {}
    errors: dict[str, str] = {}
    for value in values.dropna().unique():
        try:
            results[value] = function(value)
        except ValueError as exc:
            errors[value] = str(exc)
    return values.map(results), values.map(errors)


def identity_value(frame: pd.DataFrame, log: RejectLog, warnings: list[str]) -> pd.Series:
    """Normalise identity values by kind: phones to ``+86…``/E.164, emails to lower case.

    Member cards and WeChat ids are ids: kept as given, unless a spreadsheet turned
    them into a number in scientific notation.
    """
    del warnings  # identities never warn: a value is either valid or rejected
    if pd.api.types.is_float_dtype(frame["value"].dtype):
        return frame["value"]  # a rounded number, refused when the column is parsed as text
    value = as_text(frame["value"])
    kind = (
        as_text(frame["kind"]).str.lower()
        if "kind" in frame
        else pd.Series(pd.NA, index=frame.index)
    )
    result = value.copy()
    mobile = (kind == "phone") & value.str.fullmatch(_CN_MOBILE).fillna(False)
    result[mobile.to_numpy()] = "+86" + value[mobile.to_numpy()]
    for name, function in _IDENTITY_KINDS:
        chosen = ((kind == name) & ~mobile & value.notna()).to_numpy()
        normalised, errors = _map_distinct(value[chosen], function)
        failed = errors.notna()
        result[chosen] = normalised.where(~failed, value[chosen])
        mask = np.zeros(len(frame), dtype=bool)
        mask[np.flatnonzero(chosen)[failed.to_numpy()]] = True
        messages = np.empty(len(frame), dtype=object)
        messages[mask] = errors[failed].to_numpy()
        log.add(mask, "value", name, value, messages)
    return result


_IDENTITY_KINDS = (
    ("phone", normalize_phone),
    ("email", normalize_email),
    ("member_card", normalize_id),
    ("wechat", normalize_id),
)


def id_column(column: str) -> Normalizer:
    """Return a normalizer that rejects ids of ``column`` mangled by a spreadsheet.

    Values are returned unchanged: an id is text, so ``000123`` stays ``000123``.
    """

    def check(frame: pd.DataFrame, log: RejectLog, warnings: list[str]) -> pd.Series:
        del warnings  # an id is either valid or rejected
        raw = frame[column]
        if pd.api.types.is_float_dtype(raw.dtype):
            return raw  # a rounded number, refused when the column is parsed as text
        _, errors = _map_distinct(as_text(raw), normalize_id)
        log.add(errors.notna().to_numpy(), column, "spreadsheet_number", raw, errors.to_numpy())
        return raw

    return check


def _id_columns(table: str) -> tuple[str, ...]:
    """Text columns of ``table`` that hold ids: ``*_id`` and references (``merged_into``)."""
    spec = table_spec(table)
    references = {r.column for r in spec.references}
    return tuple(
        c.name
        for c in spec.columns
        if c.kind == "text" and (c.name.endswith("_id") or c.name in references)
    )


_VALUE_NORMALIZERS: dict[str, dict[str, Normalizer]] = {
    "consent": {"status": consent_status},
    "customer_identity": {"value": identity_value},
}

#: Per table, the columns normalised before parsing and how.
NORMALIZERS: dict[str, dict[str, Normalizer]] = {
    table: {name: id_column(name) for name in _id_columns(table)}
    | _VALUE_NORMALIZERS.get(table, {})
    for table in SOURCE_TABLES
}
