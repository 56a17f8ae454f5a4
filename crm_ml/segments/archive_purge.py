"""Purging archived lists: the retention rule for ``reports/<date>/_replaced/``.

A report re-run archives the lists it replaces under
``reports/<as_of>/_replaced/<time of the later run>/<report>/`` (see
:mod:`crm_ml.reporting`), so that what staff worked from can be checked. Kept
for ever, they keep people's data for ever. :func:`purge_archive` deletes the
archives made before a date, and marks their ``export_log`` rows ``purged at
<time> UTC by <actor>`` with the reason, in one transaction: the files are set
aside first, the rows are marked and committed, and only then are the files
deleted; if marking fails, the files are put back. Published lists are never
touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm_ml.config import Settings
from crm_ml.features.spec import when_text
from crm_ml.outputs import REPLACED_DIR, archive_time, leftover_of, set_aside
from crm_ml.rules import as_timestamp
from crm_ml.segments.export_log import file_of_row, mark_purged
from crm_ml.store.admin import utc_now
from crm_ml.store.connection import Store
from crm_ml.store.schema import ExportLog
from crm_ml.tags.manual import require_audit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeSummary:
    """What :func:`purge_archive` deleted.

    Attributes
    ----------
    before : datetime
        Archives made before this time (naive UTC) were purged.
    folders : tuple of pathlib.Path
        The archive folders purged, ``<reports>/<date>/_replaced/<time>``.
    files : int
        Files deleted.
    rows_marked : int
        ``export_log`` rows marked purged.
    not_archives : tuple of pathlib.Path
        Folders under ``_replaced`` whose name is not an archive time: left alone.
    """

    before: datetime
    folders: tuple[Path, ...]
    files: int
    rows_marked: int
    not_archives: tuple[Path, ...] = ()

    def __str__(self) -> str:
        if not self.folders:
            text = f"No archived lists made before {when_text(self.before)} UTC; nothing purged."
        else:
            text = (
                f"Purged {len(self.folders)} archive folder(s) made before "
                f"{when_text(self.before)} UTC: {self.files} file(s) deleted, "
                f"{self.rows_marked} export_log row(s) marked purged."
            )
        lines = [text, *(f"  {folder}" for folder in self.folders)]
        if self.not_archives:
            lines.append("Left alone (not named as an archive time, check by hand):")
            lines.extend(f"  {folder}" for folder in self.not_archives)
        return "\n".join(lines)


def archive_folders(reports_dir: Path) -> list[tuple[Path, datetime | None]]:
    """Return each ``<date>/_replaced/<time>`` folder under ``reports_dir`` and its time.

    The time is when the archive was made (naive UTC, from the folder's name),
    or None for a folder not named as :mod:`crm_ml.reporting` names archives.
    """
    found = []
    for folder in sorted(Path(reports_dir).glob(f"*/{REPLACED_DIR}/*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        found.append((folder, archive_time(folder.name)))
    return found


def _files_in(folder: Path) -> list[Path]:
    # Symbolic links are deleted as links: what they point to is never reached.
    return [Path(root, name) for root, _, names in os.walk(folder) for name in names]


def _rows_of(store: Store, files: list[Path], reports_dir: Path) -> list[tuple[str, str]]:
    """``(export_id, status)`` of the ``export_log`` rows whose file is one of ``files``."""
    # A file set aside by a purge that was killed goes by its hidden name; its row by the real one.
    wanted = {os.path.abspath(f.with_name(leftover_of(f.name) or f.name)) for f in files}
    archived = ExportLog.status.contains("; archived in ", autoescape=True)
    with store.connect() as conn:
        rows = conn.execute(
            select(ExportLog.export_id, ExportLog.path, ExportLog.status).where(archived)
        ).all()
    return [
        (export_id, status)
        for export_id, path, status in rows
        if os.path.abspath(file_of_row(path, status, reports_dir) or "") in wanted
    ]


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and the folders in it once empty, then ``_replaced`` if it is empty."""
    for root, _, _ in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):  # not empty: something was added meanwhile
            os.rmdir(root)
    with contextlib.suppress(OSError):
        os.rmdir(folder.parent)


def purge_archive(
    store: Store, settings: Settings, *, before: Any, actor: str, reason: str
) -> PurgeSummary:
    """Delete the archived lists made before ``before`` and mark their ``export_log`` rows.

    Parameters
    ----------
    store : Store
    settings : Settings
        Archives are the ``<date>/_replaced/<time>/`` folders under ``settings.reports_dir``.
    before : datetime-like
        Archives made before this time (UTC; a date means midnight) are purged,
        whatever the date of the lists in them. Published lists are never touched.
    actor, reason : str
        Who purges and why, kept in each ``export_log`` row: ``status`` becomes
        ``purged at <time> UTC by <actor>; <status before>`` and ``reason``
        gains ``purged: <reason>``.

    Returns
    -------
    PurgeSummary

    Raises
    ------
    ValidationError
        Without an actor or a reason.
    ConfigError
        If ``before`` cannot be read as a date, or a file cannot be moved
        (then nothing is deleted and no row is marked).
    """
    require_audit(actor, reason, work="Purging archived lists", kept=" for export_log")
    cutoff = as_timestamp(before, what="--before")
    folders = archive_folders(settings.reports_dir)
    due = [folder for folder, at in folders if at is not None and at < cutoff]
    files = [path for folder in due for path in _files_in(folder)]
    marked = 0
    if files:
        rows = _rows_of(store, files, settings.reports_dir)
        # Set aside first, so the files are deleted only once the rows are committed
        # (and put back if they are not): the context managers exit in reverse order.
        with set_aside(files, what="the archived list"), store.begin() as conn:
            marked = mark_purged(conn, rows, at=utc_now(), actor=actor, reason=reason)
    for folder in due:
        _remove_empty(folder)
    summary = PurgeSummary(
        cutoff, tuple(due), len(files), marked, tuple(f for f, at in folders if at is None)
    )
    log.info("%s", summary)
    return summary
