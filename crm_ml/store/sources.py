"""Reading source files safely: every CSV value as text, every row with its line number.

``pandas.read_csv`` quietly pads short rows, renames duplicated headers to
``name.1``, turns ``000123`` into 123 and a phone column with one blank into
floats. Here a CSV is decoded explicitly (UTF-8 with or without a BOM, or a
declared GBK), the shape of every record is measured first (a short or long
row becomes a reject naming its line), and the body is read by pyarrow with
every column typed as text. Parquet files and DataFrames keep their types;
the validators accept both.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from crm_ml.errors import ValidationError
from crm_ml.store.export import export_problem

log = logging.getLogger(__name__)

BOM = codecs.BOM_UTF8
#: Byte-order marks of UTF-16, which Excel writes for "Unicode 文本" (Unicode Text).
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: Declared encodings, by the codec that decodes them (GB18030 is a superset of GBK and GB2312).
ENCODINGS = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "gb18030": "gb18030",
}
#: What to do with a file that is not CSV text Excel can write: its own words for the format.
SAVE_AS_CSV = (
    'Open it in Excel and save it as "CSV UTF-8 (逗号分隔)" (CSV UTF-8 (Comma delimited)), '
    "then import that file."
)

HeaderCheck = Callable[[list[str]], None]

CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")

#: Told (what was just done, steps done, steps in all) as a source is read, validated or
#: written: the shape of :data:`crm_ml.features.build.ProgressCallback`, for the import's bar.
Progress = Callable[[str, int, int], None]

#: Steps of reading a CSV file that :func:`read_csv_source` tells (1M rows: 0.1–0.6 s each).
CSV_STEPS = 4


def no_progress(what: str, done: int, total: int) -> None:
    """Tell nobody: the default :data:`Progress`."""


@dataclass(frozen=True)
class BadRecord:
    """A CSV record whose number of fields differs from the header's."""

    line: int
    width: int
    text: str


@dataclass(frozen=True)
class Source:
    """A source read into a frame, with where each row came from.

    Attributes
    ----------
    frame : pandas.DataFrame
        RangeIndex; one column per source column (CSV columns are text).
    lines : numpy.ndarray
        Line of each row in a CSV file (header = 1), or its row number counted
        from 1 for a Parquet file or a DataFrame (row 1 is ``frame.iloc[0]``).
    name : str
        Shown in reject reports and messages.
    sha256 : str or None
        Digest of the file's bytes.
    bad_records : list of BadRecord
        Short and long CSV rows, left out of ``frame``.
    unit : {'line', 'row'}
        What ``lines`` count, for messages (``orders.csv:4``, ``orders.parquet row 2``).
    repeats : int
        Rows left out of ``frame`` because they repeat an earlier row exactly.
    warnings : tuple of str
        What the load should tell without refusing anything: no data rows, repeats.
    """

    frame: pd.DataFrame
    lines: np.ndarray
    name: str
    path: Path | None = None
    sha256: str | None = None
    bad_records: list[BadRecord] = field(default_factory=list)
    unit: str = "line"
    repeats: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def rows_read(self) -> int:
        """Data records in the source, malformed ones and exact repeats included."""
        return len(self.frame) + len(self.bad_records) + self.repeats


def _codec(encoding: str | None) -> str | None:
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = encoding
    if name not in ENCODINGS:
        raise ValidationError(
            f"Unsupported encoding {encoding!r}: expected 'utf-8', or 'gbk', 'gb18030' or "
            "'gb2312' (all read as GB18030), or leave it out for UTF-8 with or without a BOM. "
            "Re-save the file as UTF-8 if it is in another encoding."
        )
    return ENCODINGS[name]


def _refuse_utf16(data: bytes, name: str) -> None:
    """Refuse UTF-16 text, naming the Excel format that writes it, before any decoding hint."""
    if data.startswith(UTF16_BOMS):
        raise ValidationError(
            f"{name} is UTF-16 text (it starts with a UTF-16 byte-order mark), as Excel writes "
            'for "Unicode 文本" (Unicode Text), whose columns are separated by tabs; expected a '
            f"CSV file in UTF-8 or GBK. {SAVE_AS_CSV}"
        )


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_to_utf8(data: bytes, encoding: str | None, name: str) -> bytes:
    """Return the file's bytes as UTF-8 without a BOM, or explain why they cannot be read.

    Raises
    ------
    ValidationError
        If the bytes are not valid in the declared (or default UTF-8) encoding.
    """
    codec = _codec(encoding)
    _refuse_utf16(data, name)
    has_bom = data.startswith(BOM)
    if has_bom and codec not in (None, "utf-8"):
        raise ValidationError(
            f"{name} starts with a UTF-8 byte-order mark but encoding {encoding!r} was declared. "
            "Import it as UTF-8 (--encoding utf-8 on the command line, encoding='utf-8' in "
            "Python), or leave the encoding out."
        )
    body = data[len(BOM) :] if has_bom else data
    try:
        text = body.decode(codec or "utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(body, exc.start)
        hint = (
            "Chinese exports from Excel are often GBK: import again declaring it "
            "(--encoding gbk on the command line, encoding='gbk' in Python)."
            if codec is None
            else "Check the file's encoding and declare the right one."
        )
        raise ValidationError(
            f"{name}:{line}: byte {body[exc.start : exc.start + 1]!r} is not valid "
            f"{codec or 'UTF-8'} (expected {codec or 'UTF-8'} text). {hint}"
        ) from exc
    return body if codec in (None, "utf-8") else text.encode("utf-8")


def _segments(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each physical line (without its newline)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(arr)]))
    if starts[-1] == len(arr):
        starts, ends = starts[:-1], ends[:-1]
    carriage = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - carriage


def _shapes_unquoted(data: bytes) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """Line number and field count of each record when no field is quoted (vectorised)."""
    starts, ends = _segments(data)
    commas = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 44)
    widths = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    widths[ends == starts] = 0

    def text(index: int) -> str:
        return data[starts[index] : ends[index]].decode("utf-8")

    return np.arange(1, len(starts) + 1), widths, lambda line: text(line - 1)


def _shapes_quoted(data: bytes) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """Line number and field count of each record, following quoted newlines (csv module)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    lines, widths, texts = [], [], {}
    previous = 0
    for row in reader:
        lines.append(previous + 1)
        widths.append(len(row))
        texts[previous + 1] = ",".join(row)
        previous = reader.line_num
    return np.asarray(lines, dtype=np.int64), np.asarray(widths), texts.__getitem__


def record_shapes(data: bytes) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """Return (first line, number of fields, text getter) of every CSV record, header included.

    Blank lines are records of width 0.
    """
    if b'"' in data:
        return _shapes_quoted(data)
    return _shapes_unquoted(data)


def _raw_header(data: bytes) -> list[str]:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    return next(csv.reader(text), [])


def _header(raw_header: list[str], name: str) -> list[str]:
    if any("\t" in column for column in raw_header):
        shown = next(column for column in raw_header if "\t" in column)
        raise ValidationError(
            f"{name}:1: the header is separated by tabs ({shown[:60]!r}); expected columns "
            'separated by commas. The file is tab-separated text (Excel\'s "Unicode 文本" or '
            f'"文本文件(制表符分隔)"). {SAVE_AS_CSV}'
        )
    header = [column.strip() for column in raw_header]
    seen: dict[str, int] = {}
    for position, column in enumerate(header, start=1):
        if column in seen:
            raise ValidationError(
                f"{name}:1 column {column or '(blank)'!r} appears twice in the header "
                f"(columns {seen[column]} and {position}); expected each column once. "
                "Remove or rename the duplicate and import again."
            )
        seen[column] = position
    return header


def _read_body(data: bytes, raw_header: list[str], quoted: bool) -> pa.Table:
    return pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(
            newlines_in_values=quoted, invalid_row_handler=lambda _row: "skip"
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(raw_header, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _nothing_to_load(name: str, what: str) -> ValidationError:
    return ValidationError(
        f"{name} {what}: expected a header line naming the columns (then data rows, if any). "
        "Nothing was loaded; the store is unchanged. Check that the export finished."
    )


def _no_rows(what: str) -> str:
    """Return the note for a source with columns but no rows: a quiet day loads nothing."""
    return (
        f"{what}: 0 rows loaded, the store is unchanged. That is expected on a "
        "day with nothing to export (no coupons redeemed, say); otherwise check that the "
        "export finished."
    )


#: How many repeated rows a warning names.
QUOTED_REPEATS = 3


def drop_repeats(source: Source) -> Source:
    """Leave out rows that repeat an earlier row exactly (every column equal), with a warning.

    Overlapping export pages repeat rows: loading one copy is what was meant, so
    they are not refused as a repeated key. Rows that share a key but differ in
    any column are kept, and then refused by the key's uniqueness check.
    """
    frame = source.frame
    if len(frame) < 2 or not len(frame.columns):
        return source
    # A repeated row repeats its first column (most often its id), which is cheap to find:
    # only those rows are compared whole. For a million orders: 0.3-0.5 s against 0.6 s for
    # comparing whole rows of five text columns, 0.3-0.5 s against 1.4-1.6 s for ten.
    try:
        candidates = np.flatnonzero(frame.iloc[:, 0].duplicated(keep=False).to_numpy())
        if not len(candidates):
            return source
        hashes = pd.util.hash_pandas_object(frame.iloc[candidates], index=False).to_numpy()
        repeat = np.zeros(len(frame), dtype=bool)
        repeat[candidates[frame.iloc[candidates].duplicated(keep="first").to_numpy()]] = True
    except TypeError:  # a Parquet column of lists or maps: such rows are never repeats here
        return source
    if not repeat.any():
        return source
    first = np.zeros(len(frame), dtype=source.lines.dtype)
    first[candidates] = pd.Series(source.lines[candidates]).groupby(hashes).transform("min")
    kept = frame.iloc[np.flatnonzero(~repeat)].reset_index(drop=True)
    warning = _repeats_warning(source.unit, source.lines[repeat], first[repeat])
    return replace(
        source,
        frame=kept,
        lines=source.lines[~repeat],
        repeats=source.repeats + int(repeat.sum()),
        warnings=(*source.warnings, warning),
    )


def _repeats_warning(unit: str, lines: np.ndarray, firsts: np.ndarray) -> str:
    shown = ", ".join(
        f"{unit} {line} = {unit} {first}"
        for line, first in zip(lines[:QUOTED_REPEATS], firsts[:QUOTED_REPEATS], strict=True)
    )
    more = f" and {len(lines) - QUOTED_REPEATS} more" if len(lines) > QUOTED_REPEATS else ""
    return (
        f"{len(lines)} row(s) repeat an earlier row exactly ({shown}{more}) and were loaded "
        "once: overlapping export pages? They count as read, not as inserted, updated, "
        "unchanged or rejected. Rows that repeat a key with different values are still refused."
    )


def read_csv_source(
    path: Path,
    *,
    encoding: str | None,
    check_header: HeaderCheck,
    progress: Progress = no_progress,
) -> Source:
    """Read a CSV file with every value as text, telling ``progress`` its :data:`CSV_STEPS`.

    The steps are whole calls (pyarrow parses the file in one): at 0.5 s for a
    million rows, a parse told chunk by chunk would show no more than this.

    Raises
    ------
    ValidationError
        For an undecodable or empty file (no header), a duplicated column, or
        whatever ``check_header`` refuses (missing or unknown columns). A
        header-only file is a source of 0 rows with a note in its warnings.
    """
    raw = path.read_bytes()
    name = path.name
    data = decode_to_utf8(raw, encoding, name)
    if not data.strip():
        raise _nothing_to_load(name, "is empty")
    raw_header = _raw_header(data)
    header = _header(raw_header, name)
    check_header(header)
    progress("decoded", 1, CSV_STEPS)
    lines, bad = _data_records(data, len(header), name)
    progress("fields counted", 2, CSV_STEPS)
    table = _read_body(data, raw_header, quoted=b'"' in data)
    progress("parsed", 3, CSV_STEPS)
    if table.num_rows != len(lines):
        raise ValidationError(
            f"{name}: read {table.num_rows} rows but counted {len(lines)} well-formed records; "
            "the quoting is inconsistent. Open the file in a spreadsheet and save it as CSV again."
        )
    frame = table.rename_columns(header).to_pandas()
    progress("framed", 4, CSV_STEPS)
    empty = not len(lines) and not bad
    notes = (_no_rows("only a header, no data rows"),) if empty else ()
    return Source(frame, lines, name, path, hashlib.sha256(raw).hexdigest(), bad, warnings=notes)


def _data_records(data: bytes, width: int, name: str) -> tuple[np.ndarray, list[BadRecord]]:
    """Lines of the well-formed data records, and the short or long ones."""
    lines, widths, text_of = record_shapes(data)
    keep = widths[1:] > 0  # the header and blank lines are not data
    lines, widths = lines[1:][keep], widths[1:][keep]
    good = widths == width
    bad = [
        BadRecord(int(line), int(w), text_of(int(line)))
        for line, w in zip(lines[~good], widths[~good], strict=True)
    ]
    return lines[good], bad


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _row_numbers(count: int) -> np.ndarray:
    """Rows counted from 1, as a person reads a table (row 1 is ``frame.iloc[0]``)."""
    return np.arange(1, count + 1)


def _unreadable_parquet(name: str, exc: Exception) -> ValidationError:
    return ValidationError(
        f"{name} is not a readable Parquet file (pyarrow: {str(exc).rstrip('.')}); expected a "
        "Parquet file as written by pandas, Spark or pyarrow. Check that the export finished, "
        "or export it again as Parquet or CSV."
    )


def read_parquet_source(path: Path, *, check_header: HeaderCheck) -> Source:
    """Read a Parquet file, keeping its column types; ``lines`` are row numbers from 1.

    Raises
    ------
    ValidationError
        If the file is not Parquet (or is damaged), or ``check_header`` refuses
        its columns. A file of no rows is a source of 0 rows with a note.
    """
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable_parquet(path.name, exc) from exc
    check_header([str(n).strip() for n in schema.names])
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable_parquet(path.name, exc) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    notes = (_no_rows("no rows"),) if frame.empty else ()
    frame = frame.reset_index(drop=True)
    lines = _row_numbers(len(frame))
    return Source(frame, lines, path.name, path, _sha256_of(path), unit="row", warnings=notes)


def frame_source(frame: pd.DataFrame, name: str, *, check_header: HeaderCheck) -> Source:
    """Wrap a DataFrame as a source; ``lines`` are row numbers from 1 (``frame.iloc[line - 1]``)."""
    columns = [str(c).strip() for c in frame.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ValidationError(
            f"{name}: columns {duplicated} appear more than once; expected each column once. "
            "Drop or rename the duplicates."
        )
    check_header(columns)
    notes = (_no_rows("no rows"),) if frame.empty else ()
    renamed = frame.set_axis(columns, axis=1).reset_index(drop=True)
    return drop_repeats(Source(renamed, _row_numbers(len(frame)), name, unit="row", warnings=notes))


def read_source(
    path: Path,
    *,
    encoding: str | None,
    check_header: HeaderCheck,
    progress: Progress = no_progress,
) -> Source:
    """Read a ``.csv`` or ``.parquet`` file; a CSV file's steps are told to ``progress``.

    A Parquet file is read in one call (a million rows take about 0.3 s). Rows that
    repeat an earlier row exactly are left out with a warning (:func:`drop_repeats`).

    Raises
    ------
    ValidationError
        If the file does not exist, is a folder, has another suffix, or cannot
        be read safely.
    """
    check_file(path)
    if path.suffix.lower() in CSV_SUFFIXES:
        source = read_csv_source(
            path, encoding=encoding, check_header=check_header, progress=progress
        )
    else:
        source = read_parquet_source(path, check_header=check_header)
    return drop_repeats(source)


def check_file(path: Path) -> None:
    """Refuse a path that is not an existing ``.csv`` or ``.parquet`` file, reading nothing.

    Raises
    ------
    ValidationError
        If the file does not exist, is a folder, or has another suffix.
    """
    if path.is_dir():
        raise ValidationError(
            f"Cannot import {path}: it is a folder; expected a .csv or .parquet file. "
            "Name one file inside it."
        )
    if not path.is_file():
        raise ValidationError(f"Cannot import {path}: no such file. Check the path.")
    suffix = path.suffix.lower()
    if suffix not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        raise ValidationError(
            f"Cannot import {path.name}: expected a .csv or .parquet file, "
            f"found {suffix or 'no suffix'}."
        )


def _natural(path: Path) -> list[str | int]:
    """Sort key reading numbers as numbers, so ``part-2`` comes before ``part-10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def part_files(folder: Path) -> list[Path]:
    """Return the Parquet part files under ``folder``, in order (``year=`` folders included).

    Files and folders whose name starts with ``.`` or ``_`` are skipped, as Spark
    and Hive do (``_SUCCESS``, ``.crc`` files, an unfinished export's staging folder).

    Raises
    ------
    ValidationError
        If ``folder`` holds no Parquet part file.
    """
    parts = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in PARQUET_SUFFIXES
        and p.is_file()
        and not any(n.startswith((".", "_")) for n in p.relative_to(folder).parts)
    ]
    if not parts:
        raise ValidationError(
            f"Cannot import {folder}: it is a folder; expected a .csv or .parquet file, or a "
            "table folder written by `crm-ml export parquet`, but it holds no Parquet part "
            "file (*.parquet). An empty table is exported as an empty folder: then there is "
            "nothing to import. Otherwise name one file inside it."
        )
    return sorted(parts, key=lambda p: _natural(p.relative_to(folder)))


def _read_part(part: Path, label: str, check_header: HeaderCheck) -> Source | None:
    """Read one part file, or ``None`` when it has no rows (Spark writes such parts)."""
    try:
        if pq.read_metadata(part).num_rows == 0:
            return None
    except (pa.ArrowException, OSError):
        pass  # read_parquet_source explains an unreadable file
    try:
        return read_parquet_source(part, check_header=check_header)
    except ValidationError as exc:
        if label in str(exc):
            raise
        raise ValidationError(f"{label}: {exc}") from exc


def read_parts_source(
    folder: Path, header_check: Callable[[str], HeaderCheck], *, progress: Progress = no_progress
) -> tuple[Source, list[tuple[str, int]]]:
    """Read every Parquet part under ``folder`` as one source, rows numbered across the parts.

    ``progress`` is told each part read.

    Returns
    -------
    source : Source
        One frame of every part's rows, in :func:`part_files` order; ``lines``
        count from 1 over the whole folder, ``sha256`` digests every part.
    parts : list of (str, int)
        Each part with rows, as ``<folder>/<relative path>``, and its row count.

    A table folder of an incomplete or mixed ``crm-ml export parquet`` (see
    :func:`~crm_ml.store.export.export_problem`) is read all the same, with a
    logged warning: folders made by hand have no manifest and are legitimate.

    Raises
    ------
    ValidationError
        If the folder holds no part file or no rows, or a part is unreadable or
        has columns ``header_check(label)`` refuses; nothing is loaded.
    """
    read = []
    parts = part_files(folder)
    for number, part in enumerate(parts, start=1):
        label = f"{folder.name}/{part.relative_to(folder).as_posix()}"
        if (source := _read_part(part, label, header_check(label))) is not None:
            read.append((label, source))
        progress(label, number, len(parts))
    if not read:
        raise ValidationError(
            f"Cannot import {folder}: its Parquet part files hold no rows. Nothing was "
            "loaded; the store is unchanged."
        )
    frame = pd.concat([s.frame for _, s in read], ignore_index=True)
    digest = hashlib.sha256("".join(f"{n}:{s.sha256}\n" for n, s in read).encode()).hexdigest()
    lines = np.arange(1, len(frame) + 1)
    source = Source(frame, lines, folder.name, folder, digest, unit="row")
    _warn_if_mixed_export(folder, len(frame))
    return source, [(label, len(s.frame)) for label, s in read]


def _warn_if_mixed_export(folder: Path, rows: int) -> None:
    """Warn, without refusing, when ``folder`` is a table of an incomplete or mixed export.

    Logged here, where the folder is known, as it is read.
    """
    problem = export_problem(folder, rows)
    if problem is not None:
        log.warning("%s: %s", folder.name, problem)
