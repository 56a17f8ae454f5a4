"""Writing export files safely: atomically, Excel-safe, with names that cannot escape a folder.

Used by tag sync and segment list export. A file appears at its final path
only once it is complete (temporary file in the same folder, then
:func:`os.replace`), so a crash never leaves a half-written list behind. An
existing file is replaced, as each export or sync run rewrites its files; a
target that is a folder, or a folder that is a file, is refused before writing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any

import pandas as pd

from crm_ml.outputs import staged_file

#: First characters that make a spreadsheet read a cell as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Put before a cell of digits that Excel must keep as text. Excel would read
#: ``13812345678`` as a number (shown as ``1.38E+10``) and ``0044…`` without its
#: zeros; a leading tab keeps the text and, unlike an apostrophe in a CSV file,
#: is not shown. A tab before digits only cannot start a formula.
EXCEL_TEXT_MARK = "\t"

_DIGITS = re.compile(r"[0-9]+")

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def atomic_write(path: Path, write: Callable[[IO[str]], None], *, encoding: str) -> Path:
    """Write a text file through ``write`` so that it appears complete or not at all.

    A new file gets the permissions ``open()`` would give it (the umask's); a
    replaced file keeps its mode.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ConfigError
        If ``path`` is a folder, its folder is a file, or it cannot be written.
    """
    path = Path(path)
    with staged_file(path) as temp, temp.open("w", encoding=encoding, newline="") as handle:
        write(handle)
    return path


def neutralise_cell(value: Any) -> Any:
    """Prefix a quote to text that a spreadsheet would run as a formula; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def excel_text_cell(value: Any) -> Any:
    """Mark a cell of digits with :data:`EXCEL_TEXT_MARK`; neutralise any other value as usual."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return EXCEL_TEXT_MARK + value
    return neutralise_cell(value)


def write_excel_csv(frame: pd.DataFrame, path: Path, *, text_columns: Collection[str] = ()) -> Path:
    """Write ``frame`` (its columns, not its index) as UTF-8 CSV with a BOM, formulas neutralised.

    The BOM makes Excel read Chinese text as UTF-8; read it back with
    :func:`read_excel_csv`. In ``text_columns`` (e.g. phones to dial), a cell
    of digits is written so that Excel keeps it as text (:func:`excel_text_cell`).
    """
    header = [neutralise_cell(str(c)) for c in frame.columns]
    records = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    cell = [excel_text_cell if c in text_columns else neutralise_cell for c in frame.columns]

    def write(handle: IO[str]) -> None:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        for record in records:
            writer.writerow(["" if v is None else f(v) for f, v in zip(cell, record, strict=True)])

    return atomic_write(path, write, encoding="utf-8-sig")


def read_excel_csv(path: str | Path) -> pd.DataFrame:
    """Read a file of :func:`write_excel_csv` back: every cell as written text, marks removed.

    Cells stay text (ids keep their leading zeros, empty cells are ``""``);
    the formula guard's quote stays, as it is part of what was written, while
    the :data:`EXCEL_TEXT_MARK` of a cell of digits is not part of the value.
    """
    frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    return frame.replace(f"^{EXCEL_TEXT_MARK}([0-9]+)$", r"\1", regex=True)


def write_jsonl(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as JSON Lines (one object per row, UTF-8, non-ASCII kept as is)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")

    def write(handle: IO[str]) -> None:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    return atomic_write(path, write, encoding="utf-8")


def safe_file_part(text: str) -> str:
    """Make ``text`` safe inside a file name; ids that needed changing keep a short hash.

    ``../x`` or ``王经理`` can never produce a path outside the export folder
    or two owners sharing one file.
    """
    cleaned = _UNSAFE_FILE_CHARS.sub("_", str(text)).strip("._") or "x"
    if cleaned == str(text):
        return cleaned[:80]
    digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:70]}-{digest}"
