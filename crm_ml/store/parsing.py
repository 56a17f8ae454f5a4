"""Vectorised parsing of source columns into the store's types.

Each parser takes one raw column (text from a CSV, or whatever dtype a
DataFrame or Parquet file holds) and returns the parsed values plus the
problems it found, as boolean masks over the rows. Missing input stays
missing here; whether a value is required is decided by the caller.

Everything runs on whole columns (pyarrow compute and pandas), so a million
rows take well under a second per column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TRUE_WORDS = ("true", "t", "1", "y", "yes", "是")
FALSE_WORDS = ("false", "f", "0", "n", "no", "否")

_INT = r"^[+-]?\d{1,18}$"
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$"
_TIMESTAMP = (
    r"^(?P<y>\d{4})[-/](?P<mo>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:[ T](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
TIMESTAMP_FORMAT = "YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][+08:00|Z]"


@dataclass(frozen=True)
class Problem:
    """Rows of one column that broke one rule.

    ``message`` may hold ``{value}``, replaced by the raw value of each row.
    """

    mask: np.ndarray
    rule: str
    message: str


@dataclass
class Parsed:
    """A parsed column and the problems found while parsing it."""

    values: pd.Series
    problems: list[Problem] = field(default_factory=list)


def _mask(series: pd.Series) -> np.ndarray:
    return np.asarray(series.fillna(False), dtype=bool)


def as_text(raw: pd.Series) -> pd.Series:
    """Return ``raw`` as stripped text, blank becoming missing (no checks)."""
    if raw.dtype != "str":
        raw = raw.astype("str")
    stripped = raw.str.strip()
    return stripped.where(stripped != "")


def parse_text(raw: pd.Series) -> Parsed:
    """Parse a text column; numbers with a fraction are refused (a phone or id was rounded)."""
    if pd.api.types.is_float_dtype(raw.dtype):
        bad = raw.notna().to_numpy()
        message = (
            "{value} is a number with a decimal point where text was expected; a spreadsheet "
            "may have rounded it: export ids and phones as text"
        )
        return Parsed(
            pd.Series(pd.NA, index=raw.index, dtype="str"), [Problem(bad, "type", message)]
        )
    return Parsed(as_text(raw))


def _numeric_from_text(text: pd.Series, pattern: str, message: str) -> Parsed:
    shaped = text.str.fullmatch(pattern)
    bad = _mask(text.notna() & ~shaped.fillna(False))
    values = pd.to_numeric(text.where(shaped.fillna(False)), errors="coerce")
    return Parsed(values, [Problem(bad, "type", message)])


def parse_int(raw: pd.Series) -> Parsed:
    """Parse whole numbers into ``Int64``."""
    message = "{value} is not a whole number"
    if pd.api.types.is_bool_dtype(raw.dtype):
        bad = raw.notna().to_numpy()
        nothing = pd.Series(pd.NA, index=raw.index, dtype="Int64")
        return Parsed(nothing, [Problem(bad, "type", "{value} is a yes/no value, not a number")])
    if pd.api.types.is_integer_dtype(raw.dtype):
        return Parsed(raw.astype("Int64"))
    if pd.api.types.is_float_dtype(raw.dtype):
        floats = raw.astype("float64")
        bad = _mask(floats.notna() & (floats != np.round(floats)))
        good = floats.where(~bad & np.isfinite(floats))
        return Parsed(good.astype("Int64"), [Problem(bad, "type", message)])
    parsed = _numeric_from_text(as_text(raw), _INT, message)
    parsed.values = parsed.values.astype("Int64")
    return parsed


def parse_float(raw: pd.Series) -> Parsed:
    """Parse finite decimal numbers into ``float64``; ``N/A``, ``NaN`` and ``inf`` are refused."""
    message = "{value} is not a number (expected digits with an optional decimal point, e.g. 199.5)"
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        floats = raw.astype("float64")
        bad = np.isinf(floats.to_numpy())
        return Parsed(floats.where(~bad), [Problem(bad, "type", message)])
    parsed = _numeric_from_text(as_text(raw), _FLOAT, message)
    parsed.values = parsed.values.astype("float64")
    return parsed


def parse_bool(raw: pd.Series) -> Parsed:
    """Parse yes/no answers (``true/false``, ``1/0``, ``Y/N``, ``是/否``) into ``boolean``."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        return Parsed(raw.astype("boolean"))
    text = as_text(raw).str.lower()
    is_true, is_false = text.isin(TRUE_WORDS), text.isin(FALSE_WORDS)
    values = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    values[is_true.to_numpy()] = True
    values[is_false.to_numpy()] = False
    bad = _mask(text.notna() & ~is_true & ~is_false)
    message = "{value} is not a yes/no value (expected true/false, 1/0, Y/N or 是/否)"
    return Parsed(values, [Problem(bad, "type", message)])


def _component(parts: pa.StructArray, name: str, default: int) -> np.ndarray:
    text = parts.field(name)
    text = pc.if_else(pc.equal(text, ""), None, text)
    return np.asarray(
        pc.fill_null(pc.cast(text, pa.int64()), default).to_numpy(zero_copy_only=False)
    )


def _microseconds(parts: pa.StructArray) -> np.ndarray:
    digits = pc.utf8_slice_codeunits(pc.utf8_rpad(parts.field("f"), 6, "0"), 0, 6)
    return np.asarray(pc.fill_null(pc.cast(digits, pa.int64()), 0).to_numpy(zero_copy_only=False))


def _digits(text: pa.Array, start: int, stop: int) -> np.ndarray:
    number = pc.cast(pc.utf8_slice_codeunits(text, start, stop), pa.int64())
    return np.asarray(pc.fill_null(number, 0).to_numpy(zero_copy_only=False))


def _offset_minutes(parts: pa.StructArray) -> tuple[np.ndarray, np.ndarray]:
    """Return (has an explicit offset, offset in minutes east of UTC)."""
    zone = pc.replace_substring(parts.field("tz"), ":", "")
    zone_np = np.asarray(zone.to_numpy(zero_copy_only=False), dtype=object)
    explicit = zone_np != ""
    numeric = pc.if_else(pc.or_(pc.equal(zone, ""), pc.equal(zone, "Z")), "+0000", zone)
    padded = pc.utf8_rpad(numeric, 5, "0")
    sign = np.where(np.asarray(pc.starts_with(padded, "-").to_numpy(zero_copy_only=False)), -1, 1)
    hours = _digits(padded, 1, 3)
    minutes = _digits(padded, 3, 5)
    return explicit, sign * (hours * 60 + minutes)


def _wall_clock(parts: pa.StructArray) -> pd.Series:
    frame = pd.DataFrame(
        {
            "year": _component(parts, "y", 1),
            "month": _component(parts, "mo", 1),
            "day": _component(parts, "d", 1),
            "hour": _component(parts, "h", 0),
            "minute": _component(parts, "mi", 0),
            "second": _component(parts, "s", 0),
        }
    )
    clock = pd.to_datetime(frame, errors="coerce").astype("datetime64[us]")
    # pandas rolls 24:00 over to the next day; a source saying 24:00 or :60 is wrong.
    impossible = (frame["hour"] > 23) | (frame["minute"] > 59) | (frame["second"] > 59)
    clock = clock.where(~impossible.to_numpy())
    return clock + pd.to_timedelta(_microseconds(parts), unit="us")


def _localize(naive: pd.Series, timezone: str) -> pd.Series:
    zoned = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    return zoned.dt.tz_convert("UTC").dt.tz_localize(None)


def _timestamp_from_text(text: pd.Series, timezone: str | None) -> Parsed:
    shaped = _mask(text.str.fullmatch(_TIMESTAMP))
    parts = pc.extract_regex(pa.array(text.where(shaped), type=pa.string()), _TIMESTAMP)
    clock = _wall_clock(parts)
    clock.index = text.index
    clock = clock.where(shaped)
    explicit, offset = _offset_minutes(parts)
    if timezone is None:  # calendar dates: taken as written
        utc = clock
    else:
        utc = _localize(clock.where(~explicit), timezone)
        shifted = clock - pd.to_timedelta(offset, unit="m")
        utc = utc.where(~explicit, shifted)
    impossible = shaped & clock.isna().to_numpy()
    gap = shaped & ~impossible & utc.isna().to_numpy()
    return Parsed(
        utc.astype("datetime64[us]"),
        [
            Problem(
                text.notna().to_numpy() & ~shaped,
                "type",
                f"{{value}} is not a timestamp (expected {TIMESTAMP_FORMAT})",
            ),
            Problem(impossible, "date", "{value} is not a real date or time"),
            Problem(gap, "date", f"{{value}} does not exist or is ambiguous in {timezone}"),
        ],
    )


def parse_timestamp(raw: pd.Series, timezone: str) -> Parsed:
    """Parse timestamps into naive UTC.

    A value with an explicit offset (``+08:00``, ``Z``) is converted with it; a
    naive value is read as wall-clock time in ``timezone``.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return Parsed(raw.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]"))
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return Parsed(_localize(raw.astype("datetime64[us]"), timezone))
    text = as_text(raw)
    fast = pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if fast.notna().sum() == text.notna().sum():  # the common export format: skip the regex
        return Parsed(_localize(fast.astype("datetime64[us]"), timezone))
    return _timestamp_from_text(text, timezone)


def parse_date(raw: pd.Series) -> Parsed:
    """Parse calendar dates: midnight, never shifted by a zone; a time of day is refused."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        raw = raw.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        values = raw.astype("datetime64[us]")
    else:
        parsed = _timestamp_from_text(as_text(raw), None)
        values, problems = parsed.values, parsed.problems
        timed = _mask(values.notna() & (values != values.dt.normalize()))
        problems.append(Problem(timed, "type", "{value} is a date with a time of day"))
        return Parsed(values.where(~timed), problems)
    return Parsed(values.dt.normalize())
