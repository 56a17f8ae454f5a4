"""Table-specific normalisation applied to raw columns before they are parsed.

Consent answers are mapped to granted/withdrawn/unknown (unknown means no);
identity values are normalised by their kind (phones to E.164, emails to
lower case); ids (``*_id`` columns and references) are checked for numbers a
spreadsheet reformatted (``1.38E+10``); product categories with a common
Chinese name of an affinity category are stored as its code (美妆 → beauty), and
so are customers' acquisition channels and genders (门店 → store, 先生 → male).
Each works on whole columns, calling the per-value functions of
:mod:`crm_ml.store.normalize` once per distinct value. Some only warn: an
unknown category, channel or gender, or an order whose amounts do not add up.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from crm_ml.store.normalize import (
    CHANNEL_WORDS,
    GENDER_WORDS,
    is_recognised_consent,
    normalize_consent,
    normalize_email,
    normalize_id,
    normalize_phone,
    words_for,
)
from crm_ml.store.parsing import as_text, parse_float
from crm_ml.store.rejects import RejectLog
from crm_ml.store.schema import MAJOR_CATEGORIES, SOURCE_TABLES
from crm_ml.store.validation import table_spec

Normalizer = Callable[[pd.DataFrame, RejectLog, list[str]], pd.Series]

_CN_MOBILE = r"^1[3-9]\d{9}$"
#: How many unrecognised consent answers (or inconsistent orders) a warning quotes.
QUOTED = 3
#: How many unknown categories a warning names.
QUOTED_CATEGORIES = 10

#: Common Chinese names of those categories in retailers' exports, stored as the code.
CATEGORY_NAMES = {
    "母婴": "maternity_baby",
    "美妆": "beauty",
    "美妆个护": "beauty",
    "食品": "food",
    "食品饮料": "food",
    "服装": "apparel",
    "服饰": "apparel",
    "数码": "electronics",
    "电子": "electronics",
    "数码家电": "electronics",
    "家居": "home",
    "家居生活": "home",
}

#: How far ``net_amount`` may be from ``gross_amount - discount_amount`` (rounding).
AMOUNT_TOLERANCE = 0.01


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
        messages[mask] = _with_hint(name, value[mask], errors[failed])
        log.add(mask, "value", name, value, messages)
    return result


#: Added to a refused phone's message: a landline is a real number, but never an identity.
_MOBILE_ONLY = (
    "; only mobile numbers are accepted as phone identities, not landlines: "
    "leave landlines out of customer_identity"
)
#: A number a spreadsheet wrote in scientific notation: its message says what to do already.
_EXPONENT = re.compile(r"[eE][+-]?\d+$")


def _with_hint(kind: str, values: pd.Series, errors: pd.Series) -> list[str]:
    if kind != "phone":
        return list(errors)
    return [
        error if _EXPONENT.search(value) else error + _MOBILE_ONLY
        for value, error in zip(values, errors, strict=True)
    ]


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


def category_codes(text: pd.Series) -> pd.Series:
    """Return each category's affinity code (美妆 and Beauty → ``beauty``); NA for any other."""
    lower = text.str.lower()
    return text.map(CATEGORY_NAMES).fillna(lower.where(lower.isin(MAJOR_CATEGORIES)))


def product_category(frame: pd.DataFrame, log: RejectLog, warnings: list[str]) -> pd.Series:
    """Store a category's code for its common Chinese name (美妆 → beauty); warn on others.

    Other categories are legitimate and kept as given (they count in
    ``top_category_share``), but no affinity feature or ``likes_*`` tag reads them,
    so the warning names them.
    """
    del log  # a category is never refused
    raw = frame["category"]
    if pd.api.types.is_float_dtype(raw.dtype):
        return raw  # a number, refused when the column is parsed as text
    text = as_text(raw)
    codes = category_codes(text)
    other = text[codes.isna() & text.notna()]
    if len(other):
        warnings.append(_category_warning(other))
    return codes.fillna(raw)


def _category_warning(other: pd.Series) -> str:
    counts = other.value_counts()
    named = ", ".join(f"{v!r} ({n})" for v, n in counts[:QUOTED_CATEGORIES].items())
    more = f" and {len(counts) - QUOTED_CATEGORIES} more" if len(counts) > QUOTED_CATEGORIES else ""
    names = ", ".join(f"{name} → {code}" for name, code in CATEGORY_NAMES.items())
    return (
        f"{len(other)} product(s) have a category that no affinity feature reads: {named}{more}. "
        "They were stored as given and count in top_category_share and categories_distinct, "
        "but only the categories "
        f"{', '.join(MAJOR_CATEGORIES)} drive the affinity_* and days_since_* features "
        f"and the likes_* tags (these names are mapped to them: {names}). "
        "Rename a category to one of them if it belongs there."
    )


#: Per coded profile column: its words, and what the feature makes of a value outside them.
PROFILE_WORDS: dict[str, tuple[dict[str, str], str]] = {
    "acquisition_channel": (CHANNEL_WORDS, "other"),
    "gender": (GENDER_WORDS, "unknown"),
}


def profile_code(column: str) -> Normalizer:
    """Return a normalizer storing the code of a profile word (门店 → store, 先生 → male).

    Other values are kept as given, but no profile feature reads them (they count as
    ``other`` or ``unknown``), so the warning names them with their lines and counts.
    """
    words, fallback = PROFILE_WORDS[column]

    def normalize(frame: pd.DataFrame, log: RejectLog, warnings: list[str]) -> pd.Series:
        # A profile value is never refused: ``log`` only says where each row came from.
        raw = frame[column]
        if pd.api.types.is_float_dtype(raw.dtype):
            return raw  # a number, refused when the column is parsed as text
        text = as_text(raw)
        codes = text.str.lower().map(words)
        other = (codes.isna() & text.notna()).to_numpy()
        if other.any():
            warnings.append(
                _profile_warning(column, text[other], log.lines[other], log.unit, fallback)
            )
        return codes.fillna(raw)

    return normalize


def _profile_warning(
    column: str, values: pd.Series, lines: np.ndarray, unit: str, fallback: str
) -> str:
    words, _ = PROFILE_WORDS[column]
    counts = values.value_counts(sort=True)
    named = []
    for value, count in counts[:QUOTED_CATEGORIES].items():
        where = lines[(values == value).to_numpy()][:QUOTED]
        more = ", …" if count > QUOTED else ""
        units = f"{unit}s" if count > 1 else unit
        named.append(f"{value!r} ({count}: {units} {', '.join(map(str, where))}{more})")
    rest = f" and {len(counts) - QUOTED_CATEGORIES} more" if len(counts) > QUOTED_CATEGORIES else ""
    codes = dict.fromkeys(words.values())
    read = "; ".join(f"{code}: {', '.join(words_for(words, code))}" for code in codes)
    return (
        f"{len(values)} customer(s) have a value of {column} that no feature reads: "
        f"{', '.join(named)}{rest}. They were stored as given and count as {fallback!r} in the "
        f"{column} feature. The values read (any case) are, by the code stored: {read}. "
        "Rename a value to one of them if it means one."
    )


def _amount(frame: pd.DataFrame, column: str) -> pd.Series:
    """Read a column's amounts; NaN where one does not parse (its own check reports that)."""
    if column not in frame:
        return pd.Series(0.0, index=frame.index)  # the default discount
    parsed = parse_float(frame[column])
    values = parsed.values.copy()
    for problem in parsed.problems:
        values[problem.mask] = np.nan
    return values


def order_amounts(frame: pd.DataFrame, log: RejectLog, warnings: list[str]) -> pd.Series:
    """Warn about orders whose ``net_amount`` is not ``gross_amount - discount_amount``.

    A warning, not a reject: the demo and the CDNOW importer always write
    ``net = gross - discount``, but real exports may not. ``net_amount`` is what
    was paid, and a shipping fee (运费) paid on top, or part of an order paid with
    points (积分抵现) or stored value when the export counts only the rest, are
    legitimate differences that a reject would refuse whole files for.
    """
    gross, net = _amount(frame, "gross_amount"), _amount(frame, "net_amount")
    discount = _amount(frame, "discount_amount").fillna(0.0)
    expected = gross - discount
    # A negative amount is rejected on its own, with how returns are loaded.
    signed = ((gross >= 0) & (discount >= 0) & (net >= 0)).to_numpy()
    off = ((net - expected).abs() > AMOUNT_TOLERANCE + 1e-9).to_numpy() & signed
    off &= ~log.rejected
    if off.any():
        examples = "; ".join(
            f"{log.unit} {line}: {g:.2f} - {d:.2f} = {e:.2f} expected, {n:.2f} found"
            for line, g, d, e, n in zip(
                log.lines[off][:QUOTED], gross[off][:QUOTED], discount[off][:QUOTED],
                expected[off][:QUOTED], net[off][:QUOTED], strict=True,
            )
        )  # fmt: skip
        warnings.append(
            f"{int(off.sum())} order(s) have a net_amount that is not gross_amount - "
            f"discount_amount ({examples}). They are not rejected for it; net_amount is what "
            "every revenue feature sums, so correct the rows unless the difference is "
            "real (a shipping fee, or a payment by points or stored value)."
        )
    return frame["net_amount"]


_VALUE_NORMALIZERS: dict[str, dict[str, Normalizer]] = {
    "customer": {column: profile_code(column) for column in PROFILE_WORDS},
    "consent": {"status": consent_status},
    "customer_identity": {"value": identity_value},
    "product": {"category": product_category},
    "orders": {"net_amount": order_amounts},
}

#: Per table, the columns normalised before parsing and how.
NORMALIZERS: dict[str, dict[str, Normalizer]] = {
    table: {name: id_column(name) for name in _id_columns(table)}
    | _VALUE_NORMALIZERS.get(table, {})
    for table in SOURCE_TABLES
}
