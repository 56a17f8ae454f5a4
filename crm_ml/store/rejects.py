"""Rejected rows: collecting them, writing the report, and the message of a refused load.

Every problem is one row of the report: ``file, line, column, rule, value,
message``. ``line`` is the line in a CSV file (the header is line 1); for a
Parquet file or a DataFrame it is the row number, counted from 1 like a
person counts (row 1 is ``frame.iloc[0]``). Messages say ``orders.csv:4`` for
a line and ``orders.parquet row 2`` for a row.

The report quotes rejected values in full: the person fixing the file needs
them. The message of a refused load, which goes to stderr and from there to
logs (cron appends it to ``reports/cron.log``), masks the values of personal
columns (:data:`PERSONAL_COLUMNS`) instead: ``'131****5364x'``, ``'张*'``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crm_ml.outputs import staged_file

if TYPE_CHECKING:
    from crm_ml.store.sources import Source

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["file", "line", "column", "rule", "value", "message"]

#: How many problems a refused load's message quotes before pointing at the report.
QUOTED_PROBLEMS = 5

#: Said under the first problems when a value in them was masked.
MASKED_NOTE = "(values of personal columns masked here; the reject report has them in full)"
#: What a conflict message quotes of the stored and the given row, up to its closing ``); ``.
_CONFLICT_VALUES = re.compile(r"the store has .*\)(?=; )", re.DOTALL)
_CONFLICT_COLUMNS = re.compile(r"with a different ([\w, ]+): ")


def _mask_digits(text: str) -> str:
    """Star all digits but the last 4 (and the first 3 of 11 or more): ``131****5364x``.

    Other characters stay, so a malformed number still shows what is wrong with it.
    """
    total = sum(c.isdigit() for c in text)
    head = 3 if total >= 11 else 0
    shown, seen = [], 0
    for character in text:
        seen += character.isdigit()
        hidden = character.isdigit() and head < seen <= total - 4
        shown.append("*" if hidden else character)
    return "".join(shown)


#: Columns whose values identify or describe a person, and what kind of value each
#: holds (how :func:`mask_value` masks it). Free text (what agents and customers
#: type) keeps its words, not its phones, emails and long numbers.
PERSONAL_COLUMNS = {
    ("customer", "name"): "name",
    ("customer", "birth_date"): "date",
    ("customer_identity", "value"): "contact",
    ("custom_field_value", "value"): "free_text",
    ("behavior_event", "detail"): "free_text",
    ("points_ledger", "note"): "free_text",
    ("tier_change", "reason"): "free_text",
    ("customer_change", "old_value"): "free_text",
    ("customer_change", "new_value"): "free_text",
    ("customer_merge", "reason"): "free_text",
}


def mask_value(kind: str, value: str) -> str:
    """Mask a value of a personal column of ``kind`` (a value of :data:`PERSONAL_COLUMNS`).

    A name keeps its first character (``张*``), a birth date its year
    (``1988-**-**``), an email its first character and domain. A value of
    mostly digits (a phone, card, or a number a spreadsheet reformatted) keeps
    its last 4 digits, the first 3 of 11 or more, and its other characters, which
    show what is wrong with it (``131****5364x``, ``*.38E+10``); another WeChat id
    keeps its first character. Free text is masked as in lists (phones, emails,
    long numbers).
    """
    # crm_ml.segments imports the store, so a module-level import would be circular.
    from crm_ml.segments.masking import mask_email, mask_free_text, mask_name

    if kind == "name":
        return mask_name(value)
    if kind == "date":
        return value[:4] + re.sub(r"\d", "*", value[4:])
    if kind == "contact" and "@" in value:
        return mask_email(value)
    if kind == "contact":
        numeric = 2 * sum(c.isdigit() for c in value) >= len(value)
        return _mask_digits(value) if numeric else mask_name(value)
    return mask_free_text(value)


def _quote(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "blank"
    return repr(str(value))


def where(file: str, line: int, unit: str = "line") -> str:
    """Return ``orders.csv:4`` for a line of a file, ``orders.parquet row 2`` for a row."""
    return f"{file} row {line}" if unit == "row" else f"{file}:{line}"


class RejectLog:
    """Problems found in one source, row by row.

    Parameters
    ----------
    source : str
        The file name shown in the report.
    lines : numpy.ndarray
        Line number (CSV) or 1-based row number (Parquet, DataFrame) of each
        row of the frame being checked.
    unit : {'line', 'row'}
        What ``lines`` count (the source's ``unit``).
    """

    def __init__(self, source: str, lines: np.ndarray, *, unit: str = "line") -> None:
        self.source = source
        self.lines = np.asarray(lines, dtype=np.int64)
        self.unit = unit
        self.rejected = np.zeros(len(self.lines), dtype=bool)
        self.unparsed = 0
        self._parts: list[pd.DataFrame] = []

    def add(
        self,
        mask: np.ndarray,
        column: str,
        rule: str,
        raw: pd.Series,
        message: str | np.ndarray,
    ) -> None:
        """Record a problem for every row where ``mask`` is true.

        ``message`` is one text for all rows, or one per row of the frame; it may
        hold ``{value}``, replaced by the row's raw value.
        """
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        values = raw.to_numpy(dtype=object)[mask]
        messages = message if isinstance(message, str) else np.asarray(message, dtype=object)[mask]
        self.rejected |= mask
        self._append(self.lines[mask], column, rule, values, messages)

    def add_lines(
        self, lines: Sequence[int], column: str, rule: str, values: list[str], message: str
    ) -> None:
        """Record problems of records that never became rows (a short or long CSV row)."""
        if len(lines):
            self.unparsed += len(lines)
            self._append(np.asarray(lines), column, rule, np.asarray(values, dtype=object), message)

    def _append(
        self,
        lines: np.ndarray,
        column: str,
        rule: str,
        values: np.ndarray,
        message: str | np.ndarray,
    ) -> None:
        quoted = [_quote(v) for v in values]
        templates = [message] * len(quoted) if isinstance(message, str) else list(message)
        self._parts.append(
            pd.DataFrame(
                {
                    "line": lines,
                    "column": column,
                    "rule": rule,
                    "value": [
                        "" if q == "blank" else str(v) for q, v in zip(quoted, values, strict=True)
                    ],
                    "message": [
                        t.replace("{value}", q) for t, q in zip(templates, quoted, strict=True)
                    ],
                }
            )
        )

    @property
    def count(self) -> int:
        """Rows with at least one problem."""
        return int(self.rejected.sum()) + self.unparsed

    def frame(self) -> pd.DataFrame:
        """Return every problem, sorted by line.

        Returns
        -------
        pandas.DataFrame
            RangeIndex; columns ``file, line, column, rule, value, message``.
            ``attrs["unit"]`` says whether ``line`` counts lines or rows.
        """
        if not self._parts:
            rejects = pd.DataFrame({c: pd.Series(dtype="str") for c in REJECT_COLUMNS}).astype(
                {"line": "int64"}
            )
        else:
            rejects = pd.concat(self._parts, ignore_index=True)
            rejects.insert(0, "file", self.source)
            rejects = rejects.sort_values(["line", "column"], kind="stable", ignore_index=True)[
                REJECT_COLUMNS
            ]
        rejects.attrs["unit"] = self.unit
        return rejects


def _defuse(values: pd.Series) -> pd.Series:
    """Keep Excel from running a value as a formula (``=HYPERLINK(…)`` in a source file)."""
    risky = values.str.match(r"^(?:[=+@\t\r]|-[^\d.])").fillna(False).to_numpy()
    return values.where(~risky, "'" + values)


def write_report(rejects: pd.DataFrame, path: Path) -> Path:
    """Write the reject report as UTF-8 with a BOM, so that Excel shows Chinese text correctly.

    The report appears complete or not at all; an older report of the same file is replaced.
    It quotes the rejected values as found (the person fixing the file needs them), which
    may be phone numbers or names: it is readable by its owner only (mode 0600).

    Raises
    ------
    ConfigError
        If the reject folder (or a parent) is a file, or the report cannot be written.
    """
    safe = rejects.assign(value=_defuse(rejects["value"].astype("str")))
    with staged_file(Path(path), what="the reject report", private=True) as staging:
        safe.to_csv(staging, index=False, encoding="utf-8-sig")
    log.info("Wrote %d rejects to %s", len(rejects), path)
    return path


def _masked_value(table: str, column: str, value: str) -> str | None:
    """Return the reject's value with its personal parts masked, or None if none is personal.

    A key of several columns (``customer_id+kind+value``) is quoted as its parts
    joined by `` / ``; each personal part is masked.
    """
    columns = column.split("+")
    kinds = [PERSONAL_COLUMNS.get((table, c)) for c in columns]
    if not value or not any(kinds):
        return None
    parts = value.split(" / ")
    if len(parts) != len(columns):  # a " / " inside a value: mask the whole as free text
        return mask_value("free_text", value)
    return " / ".join(mask_value(k, p) if k else p for k, p in zip(kinds, parts, strict=True))


def _conflicts_personal(table: str, message: str) -> bool:
    """Whether an append-only conflict quotes stored and given values of a personal column."""
    found = _CONFLICT_COLUMNS.search(message)
    named = found.group(1).split(", ") if found else []
    return any((table, c) in PERSONAL_COLUMNS for c in named)


def mask_message(table: str, column: str, value: str, message: str) -> str:
    """Return a reject's message with the values of personal columns masked.

    Parameters
    ----------
    table : str
        The table imported into.
    column, value, message : str
        The reject's ``column``, ``value`` (as the report has it) and ``message``.

    Returns
    -------
    str
        ``message`` with its quote of ``value`` masked where ``column`` (or a
        column of a key) is personal, and without the stored and given values
        of a conflicting personal column (the report has them).
    """
    masked = _masked_value(table, column, value)
    if masked is not None:
        message = message.replace(repr(value), repr(masked))
    if _conflicts_personal(table, message):
        message = _CONFLICT_VALUES.sub(
            "the store and the file differ in them; see the reject report)", message
        )
    return message


def describe(rejects: pd.DataFrame, limit: int = QUOTED_PROBLEMS, *, table: str = "") -> str:
    """Return the first problems as ``file:line column: message`` (``file row N …``) lines.

    With ``table``, the values of its personal columns are masked
    (:func:`mask_message`) and a last line says so: the text goes to stderr and logs.
    """
    unit = rejects.attrs.get("unit", "line")
    shown = rejects.head(limit)
    lines, masked = [], False
    for file, line, column, value, message in zip(
        shown["file"], shown["line"], shown["column"], shown["value"], shown["message"],
        strict=True,
    ):  # fmt: skip
        text = mask_message(table, str(column), str(value), str(message)) if table else message
        masked |= text != message
        lines.append(f"  {where(file, line, unit)}{f' {column!s}' if column else ''}: {text!s}")
    if len(rejects) > limit:
        lines.append(f"  … and {len(rejects) - limit} more")
    if masked:
        lines.append(f"  {MASKED_NOTE}")
    return "\n".join(lines)


def rejection_message(
    table: str,
    source: str,
    rejects: pd.DataFrame,
    rejected: int,
    rows_read: int,
    max_reject_rate: float,
    report: Path | None,
) -> str:
    """Message of a load refused because too many rows broke rules."""
    rate = rejected / rows_read if rows_read else 1.0
    report_note = f"The full report is {report}." if report else "No report was written."
    first = describe(rejects, table=table)
    return (
        f"Import of {table} from {source} refused: {rejected} of {rows_read} rows ({rate:.1%}) "
        f"broke rules, more than max_reject_rate={max_reject_rate:.1%} allows. Nothing was "
        f"written to the store. First problems:\n{first}\n{report_note} Fix these rows "
        "and import again, or allow more rejects to load the valid rows and report the rest "
        "(--max-reject-rate on the command line, max_reject_rate= in Python)."
    )


class PartsRejectLog(RejectLog):
    """Reject log of a folder source: the report names each row's part file and row in it.

    The checks count rows across the whole folder; :meth:`frame` turns such a
    number back into the part file and its own row, as a person opening that file counts.
    """

    def __init__(self, source: Source, parts: list[tuple[str, int]]) -> None:
        super().__init__(source.name, source.lines, unit="row")
        self._names = np.asarray([name for name, _ in parts], dtype=object)
        self._ends = np.cumsum([rows for _, rows in parts])

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.searchsorted(self._ends, rows, side="left")
        starts = self._ends[index] - np.diff(self._ends, prepend=0)[index]
        return self._names[index], rows - starts

    def _in_parts(self, message: str) -> str:
        # Duplicate-key messages quote folder-wide rows; name the parts instead.
        def part_row(match: re.Match[str]) -> str:
            (first, last), (a, b) = self._locate(np.asarray([int(g) for g in match.groups()]))
            return f"in this folder ({first} row {a} … {last} row {b})"

        return re.sub(r"in this file \(rows (\d+) … (\d+)\)", part_row, message)

    def frame(self) -> pd.DataFrame:
        """Return every problem, as :meth:`RejectLog.frame`, located in its part file."""
        rejects = super().frame()
        if rejects.empty:
            return rejects
        files, rows = self._locate(rejects["line"].to_numpy())
        located = rejects.assign(file=files, line=rows.astype("int64"))
        located["message"] = [self._in_parts(m) for m in located["message"]]
        located.attrs["unit"] = "row"
        return located
