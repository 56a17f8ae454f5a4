"""Parsing source columns: chunked Arrow input, full-width digits, and what a bad date is told."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crm_ml.store.parsing import (
    Parsed,
    parse_date,
    parse_float,
    parse_int,
    parse_timestamp,
)

ZONE = "Asia/Shanghai"


def chunked(*chunks: list[str | None]) -> pd.Series:
    """A text column as a CSV over 1 MiB gives it: one Arrow array per read block."""
    column = pa.table({"x": pa.chunked_array(list(chunks), type=pa.string())}).to_pandas()["x"]
    assert column.array._pa_array.num_chunks == len(chunks)  # the shape under test
    return column


def text(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def found(parsed: Parsed) -> list[tuple[int, str, str]]:
    """(row, rule, message) of every problem, in row order."""
    return sorted(
        (int(row), p.rule, p.message) for p in parsed.problems for row in np.flatnonzero(p.mask)
    )


def stamps(*values: str | None) -> list[pd.Timestamp | None]:
    return [None if v is None else pd.Timestamp(v) for v in values]


def as_list(values: pd.Series) -> list[pd.Timestamp | None]:
    return [None if pd.isna(v) else v for v in values]


# --------------------------------------------------------------------------- chunked input (H1)


def test_timestamps_in_several_arrow_chunks_are_parsed():
    column = chunked(
        ["2025/3/7 14:05", "2025-03-07T14:05:00+08:00"], ["2025-03-07", None, "2025/3/8 9:00:30"]
    )
    parsed = parse_timestamp(column, ZONE)
    assert found(parsed) == []
    assert as_list(parsed.values) == stamps(
        "2025-03-07 06:05", "2025-03-07 06:05", "2025-03-06 16:00", None, "2025-03-08 01:00:30"
    )


def test_a_bad_date_in_a_later_chunk_is_a_problem_of_its_row():
    parsed = parse_timestamp(chunked(["2025-01-01 10:00:00"], ["2025-02-30 10:00:00"]), ZONE)
    assert found(parsed) == [(1, "date", "{value} is not a real date or time")]
    assert as_list(parsed.values) == stamps("2025-01-01 02:00", None)


def test_dates_in_several_arrow_chunks_are_parsed():
    parsed = parse_date(chunked(["1983-10-02"], ["1990/1/5", None]))
    assert found(parsed) == []
    assert as_list(parsed.values) == stamps("1983-10-02", "1990-01-05", None)


def test_numbers_in_several_arrow_chunks_are_parsed():
    assert parse_float(chunked(["1.5"], ["１９９.００"])).values.tolist() == [1.5, 199.0]
    assert parse_int(chunked(["1"], ["２"])).values.tolist() == [1, 2]


# --------------------------------------------------------------------------- full-width digits (M2)


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("２０２５/１/１ 10:00", "2025-01-01 02:00"),
        ("２０２５－０１－０１　１０：００", "2025-01-01 02:00"),
        ("２０２５／１／１ １０：００：３０", "2025-01-01 02:00:30"),
        ("２０２５-０１-０１ 10:00:00", "2025-01-01 02:00"),
    ],
)
def test_full_width_timestamps_read_as_their_ascii_twins(value, utc):
    parsed = parse_timestamp(text(value, "2025-01-01 10:00:00"), ZONE)
    assert found(parsed) == []
    assert as_list(parsed.values) == stamps(utc, "2025-01-01 02:00")


def test_full_width_dates_read_as_their_ascii_twins():
    parsed = parse_date(text("２０２５-０１-０１", "1990/1/5"))
    assert found(parsed) == []
    assert as_list(parsed.values) == stamps("2025-01-01", "1990-01-05")


@pytest.mark.parametrize(
    ("value", "number"),
    [("１９９.００", 199.0), ("１９９．５", 199.5), ("－２", -2.0), ("２", 2.0)],
)
def test_full_width_numbers_read_as_their_ascii_twins(value, number):
    parsed = parse_float(text(value, "1"))
    assert found(parsed) == []
    assert parsed.values.tolist() == [number, 1.0]


def test_full_width_whole_numbers_read_as_their_ascii_twins():
    parsed = parse_int(text("２", "１２", "3"))
    assert found(parsed) == []
    assert parsed.values.tolist() == [2, 12, 3]


@pytest.mark.parametrize("digits", ["٢٠٢٥", "२०२५"])  # Arabic-Indic, Devanagari
def test_other_scripts_digits_are_refused_not_stored_as_null(digits):
    assert found(parse_int(text(digits))) == [(0, "type", "{value} is not a whole number")]
    assert found(parse_float(text(digits)))[0][:2] == (0, "type")
    for value in (f"{digits}-01-01 10:00:00", f"{digits}/1/1 10:00"):
        parsed = parse_timestamp(text(value, "2025-01-01 10:00:00"), ZONE)
        assert [p[:2] for p in found(parsed)] == [(0, "type")]
        assert as_list(parsed.values) == stamps(None, "2025-01-01 02:00")


@pytest.mark.parametrize("value", ["0001-01-01 00:00:00", "0001-01-01", "1799-12-31 23:59"])
def test_a_placeholder_year_is_refused_not_stored_as_year_0(value):
    parsed = parse_timestamp(text(value), ZONE)
    assert as_list(parsed.values) == [None]
    assert found(parsed) == [
        (
            0,
            "date",
            "{value} is outside the years 1800 to 9999: a placeholder for an unknown date "
            "(such as 0001-01-01) or a typo? Leave the cell blank if it is unknown",
        )
    ]


def test_a_placeholder_birth_date_is_refused():
    parsed = parse_date(text("0001-01-01", "1983-10-02"))
    assert [p[:2] for p in found(parsed)] == [(0, "date")]
    assert as_list(parsed.values) == stamps(None, "1983-10-02")


def test_a_year_past_9999_in_utc_is_refused():
    parsed = parse_timestamp(text("9999-12-31 23:00-08:00", "9999-12-31 23:00"), ZONE)
    assert [p[:2] for p in found(parsed)] == [(0, "date")]
    assert as_list(parsed.values) == stamps(None, "9999-12-31 15:00")


def test_a_year_0_datetime_column_is_refused():
    column = pd.Series(np.array(["0001-01-01", "2025-01-01"], dtype="datetime64[us]"))
    parsed = parse_timestamp(column, ZONE)
    assert [p[:2] for p in found(parsed)] == [(0, "date")]
    assert as_list(parsed.values) == stamps(None, "2024-12-31 16:00")


# --------------------------------------------------------------------------- formats and hints (L3)


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2025年3月7日 14:05", "2025-03-07 06:05"),
        ("2025年3月7日14:05:30", "2025-03-07 06:05:30"),
        ("2025年03月07日", "2025-03-06 16:00"),
        ("２０２５年３月７日 １４：０５", "2025-03-07 06:05"),
    ],
)
def test_chinese_dates_are_read(value, utc):
    parsed = parse_timestamp(text(value), ZONE)
    assert found(parsed) == []
    assert as_list(parsed.values) == stamps(utc)


def test_a_chinese_calendar_date_is_read():
    parsed = parse_date(text("1983年10月2日"))
    assert found(parsed) == []
    assert as_list(parsed.values) == stamps("1983-10-02")


EXPECTED = (
    "{value} is not a timestamp (expected YYYY-MM-DD[ HH:MM[:SS]], e.g. 2025/3/7 14:05, "
    "2025年3月7日 14:05 or 2025-03-07T14:05:00+08:00)"
)
EXCEL = "in Excel, format the column as yyyy-mm-dd hh:mm before saving"


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("45723.5868", "it looks like an Excel date serial number"),
        ("45723", "it looks like an Excel date serial number"),
        (
            "2025/3/7 下午 2:05",
            "it is written as Excel shows dates in Chinese or on a 12-hour clock",
        ),
        ("2025/3/7 2:05 PM", "it is written as Excel shows dates in Chinese or on a 12-hour clock"),
        (
            "2025年3月7日 下午2:05",
            "it is written as Excel shows dates in Chinese or on a 12-hour clock",
        ),
        ("3月7日 14:05", "it is written as Excel shows dates in Chinese or on a 12-hour clock"),
        (
            "07/03/2025 14:05",
            "day/month/year and month/day/year cannot be told apart, so the year must come first",
        ),
        ("2025.3.7 14:05", "the date must be separated with - or /"),
    ],
)
def test_a_spreadsheet_shaped_timestamp_is_told_how_to_save_it(value, hint):
    assert found(parse_timestamp(text(value), ZONE)) == [
        (0, "type", f"{EXPECTED}: {hint}; {EXCEL}")
    ]


def test_another_shape_lists_what_is_accepted():
    assert found(parse_timestamp(text("soon"), ZONE)) == [(0, "type", EXPECTED)]


def test_a_bad_date_is_told_the_date_formats():
    assert found(parse_date(text("45723", "1.2"))) == [
        (
            0,
            "type",
            "{value} is not a date (expected YYYY-MM-DD, e.g. 2025/3/7 or 2025年3月7日): it "
            "looks like an Excel date serial number; in Excel, format the column as yyyy-mm-dd "
            "before saving",
        ),
        (1, "type", "{value} is not a date (expected YYYY-MM-DD, e.g. 2025/3/7 or 2025年3月7日)"),
    ]
