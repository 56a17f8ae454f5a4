"""Removing one person from the list files already written: ``crm-ml lists redact``.

An erasure or an objection has to reach the lists already sent, without
re-running a day and purging everyone's archives. :func:`redact_lists` asks
:func:`~crm_ml.segments.find.find_lists` which files hold the person (every
record merged into the same survivor; published, archived, unpublished and
elsewhere) and rewrites each without the person's rows, through
:func:`crm_ml.outputs.staged_file` as exports write lists: every file is staged
complete before any is replaced, and each appears whole or not at all. Only the
person's records are dropped: the BOM, the header and every other row are
copied as they were, byte for byte, and the file keeps its mode (an unmasked
list stays 0600).

What a killed writer left beside a list (``.NAME.<id>.tmp`` or
``.replaced``, :func:`crm_ml.outputs.leftover_of`) is an incomplete copy that
no ``export_log`` row describes: it is deleted rather than rewritten.

Each ``export_log`` row of a rewritten file keeps its ``status``: ``written``,
``replaced by a later run …; archived in …`` and ``not published (…)`` are what
:func:`~crm_ml.segments.export_log.file_of_row` reads the file's place from, so
later finds, re-runs and purges still reach it. The redaction goes in
``reason`` instead, as a purge's does: ``redacted <time> UTC by <actor>: <n>
row(s) of one person removed (<why>)`` is appended. It does not name the
person: the log would otherwise keep the id the request asked to remove.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, select, update

from crm_ml.config import Settings
from crm_ml.outputs import staged_file
from crm_ml.segments.find import ListsFound, find_lists
from crm_ml.segments.headers import LIST_HEADERS
from crm_ml.segments.masking import SECRET_ENV, pseudonymous_id
from crm_ml.store.admin import utc_now
from crm_ml.store.connection import Store
from crm_ml.store.schema import ExportLog
from crm_ml.tags.files import EXCEL_TEXT_MARK
from crm_ml.tags.manual import require_audit

log = logging.getLogger(__name__)

_BOM = "\ufeff"
_TEXT_MARKED = re.compile(f"^{EXCEL_TEXT_MARK}([0-9]+)$")
#: The code's name of every list header, in any language (as ``machine_columns`` reads them).
_CODE_NAME = {header: code for headers in LIST_HEADERS.values() for code, header in headers.items()}


@dataclass(frozen=True)
class RedactSummary:
    """What :func:`redact_lists` did.

    Attributes
    ----------
    found : ListsFound
        What :func:`~crm_ml.segments.find.find_lists` found before the files were changed.
    rewritten : tuple of (pathlib.Path, int)
        Each file rewritten without the person, and how many rows were removed from it.
    leftovers : tuple of pathlib.Path
        Hidden copies left by interrupted list writers that held the person: deleted.
    rows_noted : int
        ``export_log`` rows whose ``reason`` now records the redaction.
    not_redacted : tuple of (pathlib.Path, str)
        Files that may hold the person and were not changed, with why; to check by hand.
    """

    found: ListsFound
    rewritten: tuple[tuple[Path, int], ...]
    leftovers: tuple[Path, ...]
    rows_noted: int
    not_redacted: tuple[tuple[Path, str], ...] = ()

    @property
    def rows_removed(self) -> int:
        """Rows removed from the rewritten files (deleted leftovers not counted)."""
        return sum(rows for _, rows in self.rewritten)

    def __str__(self) -> str:
        found = self.found
        lines = [
            f"{_who(found)}: {len(self.rewritten)} list file(s) rewritten without the person, "
            f"{self.rows_removed} row(s) removed, {self.rows_noted} export_log row(s) noted "
            f"'redacted' (of {found.searched} list file(s) read)."
        ]
        lines += [f"  {path}  ({rows} row(s))" for path, rows in self.rewritten]
        if self.leftovers:
            lines.append(
                f"{len(self.leftovers)} hidden copy(ies) left by interrupted list writers held "
                "the person: deleted (incomplete copies that no export_log row describes):"
            )
            lines += [f"  {path}" for path in self.leftovers]
        if self.not_redacted:
            lines.append(
                f"{len(self.not_redacted)} file(s) could NOT be redacted and may still hold "
                f"the person; deal with them by hand, or run `crm-ml lists redact "
                f"{found.customer_id}` again with {SECRET_ENV} set to the key they were "
                "written with:"
            )
            lines += [f"  {path}  ({why})" for path, why in self.not_redacted]
        if found.missing:
            lines.append(
                f"{len(found.missing)} list file(s) the export log records as written are not "
                "where it says (deleted or moved by hand?): whether they held the person cannot "
                "be checked; find them, or where they were sent:"
            )
            lines += [f"  {path}" for path in found.missing]
        return "\n".join(lines)


def _who(found: ListsFound) -> str:
    others = [record for record in found.records if record != found.customer_id]
    return found.customer_id + (f" (the same person as {', '.join(others)})" if others else "")


def _records(text: str) -> Iterator[tuple[list[str], str]]:
    """Yield each CSV record of ``text`` with its raw text (a quoted cell may span lines)."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    # The reader pulls lines only until a record is complete, so ``consumed`` is that record.
    for cells in csv.reader(lines()):
        yield cells, "".join(consumed)
        consumed.clear()


def _cell(value: str) -> str:
    """Return a cell's value as :func:`~crm_ml.segments.headers.read_list` reads it."""
    return _TEXT_MARKED.sub(r"\1", value)


def without_person(text: str, pseudo_ids: set[str], records: set[str]) -> tuple[str, int]:
    """Return the list ``text`` without the rows of the person, and how many were removed.

    A row is the person's if its 匿名编号 is one of ``pseudo_ids`` or its
    客户编号 one of ``records`` (headers in any language). The BOM, the header
    and every other record are kept exactly as written.
    """
    rows = _records(text)
    try:
        header, kept = next(rows)
    except StopIteration:
        return text, 0
    columns = [_CODE_NAME.get(name.removeprefix(_BOM), name) for name in header]
    wanted = {"pseudo_id": pseudo_ids, "customer_id": records}
    checks = [(i, wanted[c]) for i, c in enumerate(columns) if c in wanted]
    removed = 0
    for cells, raw in rows:
        if any(i < len(cells) and _cell(cells[i]) in ids for i, ids in checks):
            removed += 1
        else:
            kept += raw
    return kept, removed


def _key(secret: str | bytes) -> bytes:
    # find_lists has refused a missing key and warned of a weak one; use it as it does.
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _redacted_note(at: datetime, actor: str, rows: int, reason: str) -> str:
    return (
        f"redacted {at:%Y-%m-%d %H:%M:%S} UTC by {actor}: {rows} row(s) of one person removed "
        f"({reason})"
    )


def _note_rows(conn: Connection, rows: list[tuple[str, str | None, str]]) -> int:
    """Append each note to the ``reason`` of its ``(export_id, status, note)`` row, if unchanged.

    A row whose status changed since it was read (a re-run archived or a purge
    deleted its file meanwhile) is left as that change made it.
    """
    noted = 0
    for export_id, status, note in rows:
        row = (ExportLog.export_id == export_id) & (
            ExportLog.status.is_(None) if status is None else ExportLog.status == status
        )
        before = conn.execute(select(ExportLog.reason).where(row)).first()
        if before is None:
            continue
        reason = f"{before.reason}; {note}" if before.reason else note
        conn.execute(update(ExportLog).where(row).values(reason=reason))
        noted += 1
    return noted


def _log_rows_of(files: pd.DataFrame, path: str) -> list[tuple[str, str | None]]:
    logged = files[(files["path"] == path) & files["export_id"].notna()]
    return [
        (str(export_id), None if pd.isna(status) else str(status))
        for export_id, status in zip(logged["export_id"], logged["status"], strict=True)
    ]


def redact_lists(
    store: Store,
    settings: Settings,
    customer_id: str,
    *,
    secret: str | bytes | None,
    actor: str,
    reason: str,
    progress: bool = False,
) -> RedactSummary:
    """Rewrite every written list file that holds a person without their rows; note it in the log.

    Parameters
    ----------
    store : Store
    settings : Settings
        ``settings.reports_dir`` is searched as :func:`~crm_ml.segments.find.find_lists` does.
    customer_id : str
        Any of the person's ids; every record merged into the same person is removed.
    secret : str or bytes
        The key the lists' 匿名编号 were made with (``CRM_ML_EXPORT_SECRET``).
        Masked lists written under another key cannot be searched with it: they
        are named in ``not_redacted``.
    actor, reason : str
        Who redacts and why, appended to the ``reason`` of each ``export_log``
        row of a rewritten file (see the module's docstring).
    progress : bool
        Show a progress bar while reading many files.

    Returns
    -------
    RedactSummary

    Raises
    ------
    ValidationError
        Without an actor or a reason (nothing is read or changed).
    ConfigError
        Without a secret, or if a file cannot be written: no row is noted, and
        no file is replaced when one cannot be staged.
    """
    require_audit(actor, reason, work="Redacting a person from the written lists",
                  kept=" for export_log")  # fmt: skip
    found = find_lists(store, settings, customer_id, secret=secret, progress=progress)
    key = _key(secret or b"")
    pseudo_ids = {pseudonymous_id(record, key) for record in found.records}
    rewrites, leftovers, not_redacted = _plan(found, pseudo_ids)
    at = utc_now()
    notes = [
        (export_id, status, _redacted_note(at, actor, removed, reason))
        for path, _, removed in rewrites
        for export_id, status in _log_rows_of(found.files, str(path))
    ]
    noted = _replace_and_note(store, rewrites, notes)
    for path in leftovers:
        path.unlink(missing_ok=True)
    summary = RedactSummary(
        found,
        tuple((path, removed) for path, _, removed in rewrites),
        tuple(leftovers),
        noted,
        tuple(not_redacted),
    )
    log.info("%s", summary)
    return summary


def _plan(
    found: ListsFound, pseudo_ids: set[str]
) -> tuple[list[tuple[Path, str, int]], list[Path], list[tuple[Path, str]]]:
    """Return ``(path, redacted text, rows removed)`` per file, the leftovers, and files to skip."""
    not_redacted = [(path, "could not be read as a list") for path in found.unreadable]
    not_redacted += [(path, "written under another key") for path in found.other_key]
    leftovers, rewrites = [], []
    files = found.files.drop_duplicates("path")
    for path, state, expected in zip(files["path"], files["state"], files["rows"], strict=True):
        if state == "leftover":
            leftovers.append(Path(path))
            continue
        try:
            text = Path(path).read_bytes().decode("utf-8")
            redacted, removed = without_person(text, pseudo_ids, set(found.records))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            not_redacted.append((Path(path), f"could not be read again: {exc}"))
            continue
        if removed != expected:  # read differently from find_lists: leave it to a person
            not_redacted.append((Path(path), f"{expected} row(s) found, {removed} matched"))
            continue
        rewrites.append((Path(path), redacted, removed))
    return rewrites, leftovers, not_redacted


def _replace_and_note(
    store: Store,
    rewrites: list[tuple[Path, str, int]],
    notes: list[tuple[str, str | None, str]],
) -> int:
    """Replace each file with its redacted text and note the log rows, in one transaction.

    Every file is staged complete before any replaces its original; they are
    replaced before the rows are committed, so a failure leaves a file redacted
    without its note rather than a note claiming a redaction that did not happen.
    """
    with store.begin() as conn, contextlib.ExitStack() as stack:
        for path, text, _ in rewrites:
            staged = stack.enter_context(staged_file(path, what="the redacted list"))
            staged.write_bytes(text.encode("utf-8"))
        return _note_rows(conn, notes)
