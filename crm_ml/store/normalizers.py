"""Table-specific normalisation applied to raw columns before they are parsed.

Consent answers are mapped to granted/withdrawn/unknown (unknown means no);
identity values are normalised by their kind (phones to E.164, emails to
lower case). Each works on whole columns, calling the per-value functions of
:mod:`crm_ml.store.normalize` once per distinct value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from crm_ml.store.normalize import (
    is_recognised_consent,
    normalize_consent,
    normalize_email,
    normalize_phone,
)
from crm_ml.store.parsing import as_text
from crm_ml.store.rejects import RejectLog

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
            f"line {line}: {value!r}"
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
    """Normalise identity values by kind: phones to ``+86…``/E.164, emails to lower case."""
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
    for name, function in (("phone", normalize_phone), ("email", normalize_email)):
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


NORMALIZERS: dict[str, dict[str, Normalizer]] = {
    "consent": {"status": consent_status},
    "customer_identity": {"value": identity_value},
}
