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

# [0-9], not \d: \d also matches other scripts' digits, which the conversions then turn
# into NULL or year 0 without a word (full-width ones are made ASCII first, see _half_width).
_INT = r"^[+-]?[0-9]{1,18}$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_TIMESTAMP = (
    r"^(?P<y>[0-9]{4})[-/](?P<mo>[0-9]{1,2})[-/](?P<d>[0-9]{1,2})"
    r"(?:[ T](?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?)?"
    r" *(?P<tz>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
TIMESTAMP_FORMAT = "YYYY-MM-DD[ HH:MM[:SS]]"
#: What the timestamp and date parsers accept, as reject messages show it (fractions of a
#: second, a comma before them, and ``Z`` are read too).
ACCEPTED = {
    "timestamp": f"{TIMESTAMP_FORMAT}, e.g. 2025/3/7 14:05, 2025年3月7日 14:05 or "
    "2025-03-07T14:05:00+08:00",
    "date": "YYYY-MM-DD, e.g. 2025/3/7 or 2025年3月7日",
}
#: The Excel cell format that saves what :data:`ACCEPTED` reads.
EXCEL_FORMAT = {"timestamp": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd"}
#: Years a timestamp or date may have: earlier ones are placeholders (0001-01-01) or typos,
#: and year 1 read in a zone east of UTC becomes year 0, which Python cannot hold.
MIN_YEAR, MAX_YEAR = 1800, 9999

#: Full-width forms, as a Chinese IME types them (２０２５／３／７　１４：０５, １９９．００), and
#: the ideographic space; read as their ASCII twins, which is what Unicode NFKC maps them to.
_FULL_WIDTH = "[\uff01-\uff5e\u3000]"
_TO_HALF_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: ord(" ")}
_CHINESE_DATE = r"^([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日 *"
#: Shapes a rejected timestamp is recognised by, and what to say about each (first match wins).
_TIMESTAMP_HINTS = (
    (r"^[0-9]{5}(?:\.[0-9]+)?$", "it looks like an Excel date serial number"),
    (
        r"(?i)年|月|日|上午|下午|(?:^|[^a-z])[ap]\.?m\.?(?:$|[^a-z])",
        "it is written as Excel shows dates in Chinese or on a 12-hour clock",
    ),
    (
        r"^[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4}",
        "day/month/year and month/day/year cannot be told apart, so the year must come first",
    ),
    (r"^[0-9]{4}\.[0-9]{1,2}\.[0-9]{1,2}", "the date must be separated with - or /"),
)


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


def _half_width(text: pd.Series) -> pd.Series:
    """Return ``text`` with full-width characters as their ASCII twins (``２０２５`` → ``2025``).

    Only rows holding one are translated (in Python), so ASCII columns cost one scan.
    """
    wide = _mask(text.str.contains(_FULL_WIDTH))
    if not wide.any():
        return text
    return text.mask(wide, text[wide].str.translate(_TO_HALF_WIDTH))


def _numeric_from_text(text: pd.Series, pattern: str, message: str) -> Parsed:
    shaped = text.str.fullmatch(pattern).fillna(False)
    if (text.notna() & ~shaped).any():  # typed with a Chinese IME? Canonical columns skip this
        text = _half_width(text)
        shaped = text.str.fullmatch(pattern).fillna(False)
    bad = _mask(text.notna() & ~shaped)
    values = pd.to_numeric(text.where(shaped), errors="coerce")
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


def _arrow_text(text: pd.Series) -> pa.Array:
    """Return ``text`` as one Arrow array.

    A CSV read in several blocks (over 1 MiB) gives a chunked array, and compute
    functions then return chunked results, which have no ``.field``.
    """
    array = pa.array(text, type=pa.string())
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _readable(text: pd.Series) -> pd.Series:
    """Full-width digits and separators made ASCII, ``2025年3月7日`` made ``2025-3-7``."""
    text = _half_width(text)
    chinese = _mask(text.str.contains("年"))
    if not chinese.any():
        return text
    dashed = text[chinese].str.replace(_CHINESE_DATE, r"\1-\2-\3 ", regex=True).str.strip()
    return text.mask(chinese, dashed)


def _out_of_years(stamps: pd.Series) -> np.ndarray:
    years = stamps.dt.year
    return _mask((years < MIN_YEAR) | (years > MAX_YEAR))


def _year_problem(mask: np.ndarray) -> Problem:
    return Problem(
        mask,
        "date",
        f"{{value}} is outside the years {MIN_YEAR} to {MAX_YEAR}: a placeholder for an "
        "unknown date (such as 0001-01-01) or a typo? Leave the cell blank if it is unknown",
    )


def _shape_problems(text: pd.Series, unshaped: np.ndarray, what: str) -> list[Problem]:
    """Problems of values that are no timestamp: one per recognisable shape, with its hint."""
    expected = f"{{value}} is not a {what} (expected {ACCEPTED[what]})"
    fix = f"in Excel, format the column as {EXCEL_FORMAT[what]} before saving"
    left = unshaped.copy()
    problems = []
    for pattern, hint in _TIMESTAMP_HINTS:
        if not left.any():
            break
        looks = left & _mask(text.str.contains(pattern))
        problems.append(Problem(looks, "type", f"{expected}: {hint}; {fix}"))
        left &= ~looks
    problems.append(Problem(left, "type", expected))
    return problems


def _timestamp_from_text(text: pd.Series, timezone: str | None) -> Parsed:
    text = _readable(text)
    shaped = _mask(text.str.fullmatch(_TIMESTAMP))
    parts = pc.extract_regex(_arrow_text(text.where(shaped)), _TIMESTAMP)
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
    early_or_late = _out_of_years(clock) | _out_of_years(utc)
    what = "date" if timezone is None else "timestamp"
    return Parsed(
        utc.where(~early_or_late).astype("datetime64[us]"),
        [
            *_shape_problems(text, text.notna().to_numpy() & ~shaped, what),
            Problem(impossible, "date", "{value} is not a real date or time"),
            Problem(gap, "date", f"{{value}} does not exist or is ambiguous in {timezone}"),
            _year_problem(early_or_late),
        ],
    )


def _checked_years(values: pd.Series, wall_clock: pd.Series) -> Parsed:
    """``values`` without stamps outside :data:`MIN_YEAR`–:data:`MAX_YEAR`, which are problems."""
    bad = _out_of_years(values) | _out_of_years(wall_clock)
    return Parsed(values.where(~bad), [_year_problem(bad)])


def _canonical(text: pd.Series, form: str) -> pd.Series:
    """Values of ``text`` in exactly ``form``, NaT elsewhere: the fast path of common exports.

    Only ASCII text counts, as in the regexes: pandas would read other scripts' digits here.
    """
    ascii_only = pc.string_is_ascii(_arrow_text(text)).to_numpy(zero_copy_only=False)
    fast = pd.to_datetime(text, format=form, errors="coerce")
    return fast.where(np.asarray(ascii_only, dtype=bool) | text.isna().to_numpy())


def parse_timestamp(raw: pd.Series, timezone: str) -> Parsed:
    """Parse timestamps into naive UTC.

    A value with an explicit offset (``+08:00``, ``Z``) is converted with it; a
    naive value is read as wall-clock time in ``timezone``. Text is read as
    :data:`ACCEPTED` says; full-width digits and separators count as ASCII.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        utc = raw.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
        return _checked_years(utc, raw.dt.tz_localize(None))
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        naive = raw.astype("datetime64[us]")
        return _checked_years(_localize(naive, timezone), naive)
    text = as_text(raw)
    fast = _canonical(text, "%Y-%m-%d %H:%M:%S")
    if fast.notna().sum() == text.notna().sum():  # the common export format: skip the regex
        naive = fast.astype("datetime64[us]")
        return _checked_years(_localize(naive, timezone), naive)
    return _timestamp_from_text(text, timezone)


def parse_date(raw: pd.Series) -> Parsed:
    """Parse calendar dates: midnight, never shifted by a zone; a time of day is refused."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        raw = raw.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        values = raw.astype("datetime64[us]").dt.normalize()
        return _checked_years(values, values)
    text = as_text(raw)
    fast = _canonical(text, "%Y-%m-%d")
    if fast.notna().sum() == text.notna().sum():  # the common export format: skip the regex
        values = fast.astype("datetime64[us]")
        return _checked_years(values, values)
    parsed = _timestamp_from_text(text, None)
    values, problems = parsed.values, parsed.problems
    timed = _mask(values.notna() & (values != values.dt.normalize()))
    problems.append(Problem(timed, "type", "{value} is a date with a time of day"))
    return Parsed(values.where(~timed), problems)
