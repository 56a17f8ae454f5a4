"""What became of each exported file: finding, relocating and marking ``export_log`` rows.

:func:`~crm_ml.segments.export.export_list` records every file it writes in
``export_log``: with ``status`` ``writing (…)`` before it writes them, then
``written`` once all are in place (a row left ``writing`` belongs to an export
killed in between; its file may be there). When the files are moved afterwards
(a report run publishes its lists from a staging folder), :func:`relocate_exports`
points the log at their new place, :func:`mark_unpublished` says they were
discarded, and :func:`mark_replaced` says a later run's files took their place
(:func:`replaced_status` is that wording, for a re-export too), and
:func:`mark_purged` that an archived file was deleted under the retention rule.
Rows are never deleted: the export happened. A row's ``status`` says whether its
file is still at ``path`` (``written``) or what became of it (``not published
(…)``, ``replaced by a later run at …[; archived in …]``, ``purged at …``), and
:func:`file_of_row` reads from it where the file is now.

Every function here takes the caller's connection and only changes rows still
``written`` (or ``writing``) at the path it read: a run publishing at the same time may have
moved or marked them since, and that must stand.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import cast

from sqlalchemy import Connection, Table, inspect, select, update

from crm_ml.store.schema import EXPORT_WRITING, EXPORT_WRITTEN, ExportLog

_LOG_TABLE = cast(Table, ExportLog.__table__)
#: The statuses of a row whose file is (or may be) at its ``path``.
IN_PLACE = (EXPORT_WRITTEN, EXPORT_WRITING)
_STATUS_CHARS = 200  # export_log.status is VARCHAR(200)
_ARCHIVED_IN = re.compile(r"^replaced by a later run at [^;]*; archived in (?P<folder>.+)$")
PURGED_PREFIX = "purged at "


def logged_under(conn: Connection, folder: Path) -> list[tuple[str, str]]:
    """Return ``(export_id, path)`` of the exports logged with a file still under ``folder``."""
    if not inspect(conn).has_table(_LOG_TABLE.name):
        return []
    path = _LOG_TABLE.c.path
    under = path.startswith(f"{folder}{os.sep}", autoescape=True)
    written = _LOG_TABLE.c.status.in_(IN_PLACE)
    rows = conn.execute(select(_LOG_TABLE.c.export_id, path).where(under & written)).all()
    return [(str(export_id), str(logged)) for export_id, logged in rows]


def _update_row(conn: Connection, export_id: str, read_path: str, **values: str) -> None:
    # Only if the row still names ``read_path`` as written: a run publishing at the
    # same time may have moved or marked it since it was read, and that must stand.
    row = (
        (_LOG_TABLE.c.export_id == export_id)
        & (_LOG_TABLE.c.path == read_path)
        & (_LOG_TABLE.c.status.in_(IN_PLACE))
    )
    conn.execute(update(_LOG_TABLE).where(row).values(**values))


def mark_rows(conn: Connection, logged: list[tuple[str, str]], status: str) -> int:
    """Set the ``status`` of the ``(export_id, path)`` rows ``logged``, if still written there.

    Returns
    -------
    int
        How many rows were given (``len(logged)``).
    """
    for export_id, path in logged:
        _update_row(conn, export_id, path, status=status)
    return len(logged)


def relocate_exports(conn: Connection, old_dir: Path, new_dir: Path) -> int:
    """Point the exports logged under ``old_dir`` at the same files under ``new_dir``.

    Call it in the transaction that covers the move, so the audit trail names
    where the files are whether the move happens or not.

    Returns
    -------
    int
        How many ``export_log`` rows were changed.
    """
    logged = logged_under(conn, old_dir)
    for export_id, path in logged:
        _update_row(conn, export_id, path, path=str(new_dir / Path(path).relative_to(old_dir)))
    return len(logged)


def mark_unpublished(
    conn: Connection, folder: Path, reason: str, *, missing_only: bool = False
) -> int:
    """Set the status of the exports logged under ``folder`` to ``not published (reason)``.

    The rows stay: the export happened (possibly unmasked) even though its files
    were discarded, and the audit trail must say so.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    folder : pathlib.Path
    reason : str
        Why, e.g. ``report failed, see <notebook>``.
    missing_only : bool
        Mark only the rows whose file no longer exists (a run killed before it
        could mark its own): a file still there may belong to a run in progress.

    Returns
    -------
    int
        How many ``export_log`` rows were marked.
    """
    logged = logged_under(conn, folder)
    if missing_only:
        logged = [(export_id, path) for export_id, path in logged if not Path(path).exists()]
    return mark_rows(conn, logged, f"not published ({reason})")


def mark_replaced(
    conn: Connection, folder: Path, at: datetime, archived_in: Path | None = None
) -> int:
    """Set the status of the exports logged under ``folder`` to ``replaced by a later run at …``.

    Call it in the transaction that publishes the later run's files over
    ``folder`` and before :func:`relocate_exports` names them there, so that
    only the earlier run's rows are marked.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    folder : pathlib.Path
        The folder being replaced.
    at : datetime
        When it is replaced, naive UTC.
    archived_in : pathlib.Path, optional
        Where the replaced files were kept, named in the status (see
        :func:`replaced_status`); None when they were not kept.

    Returns
    -------
    int
        How many ``export_log`` rows were marked.
    """
    return mark_rows(conn, logged_under(conn, folder), replaced_status(at, archived_in))


def replaced_status(at: datetime, archived_in: Path | None = None) -> str:
    """Return the ``status`` of a row whose file a later run or export replaced at ``at``.

    ``replaced by a later run at <at> UTC``, plus ``; archived in <archived_in>``
    when the file was kept there. Give ``archived_in`` relative to a folder the
    reader knows (a report run's: the reports folder): ``status`` holds at most
    200 characters.
    """
    status = f"replaced by a later run at {at:%Y-%m-%d %H:%M:%S} UTC"
    return status + (f"; archived in {archived_in}" if archived_in else "")


def file_of_row(path: str, status: str | None, reports_dir: Path) -> Path | None:
    """Return where the file an ``export_log`` row describes is now, or None if it is gone.

    ``written``, ``writing`` and ``not published (…)`` rows name their file at ``path``; a
    row ``replaced by a later run …; archived in <folder>`` names the same file
    in the archive folder (``<folder>`` is relative to ``reports_dir``, as
    :func:`crm_ml.reporting.run_report` writes it); a file replaced without an
    archive, or purged, is gone (``path`` may hold a later export's file).
    """
    status = status or EXPORT_WRITTEN
    if status in IN_PLACE or status.startswith("not published"):
        return Path(path)
    found = _ARCHIVED_IN.match(status)
    if found is None:
        return None
    archive = reports_dir / found["folder"]
    # <date>/_replaced/<time>/<name> holds what was <date>/<name> when it was replaced.
    parts = Path(found["folder"]).parts
    published = reports_dir / parts[0] / parts[-1]
    try:
        return archive / Path(path).relative_to(published)
    except ValueError:
        return archive / Path(path).name


def purged_status(status: str, at: datetime, actor: str) -> str:
    """Return the ``status`` of a row whose archived file ``actor`` purged at ``at``.

    ``purged at <at> UTC by <actor>; <the status before>``, cut to the 200
    characters ``status`` holds.
    """
    text = f"{PURGED_PREFIX}{at:%Y-%m-%d %H:%M:%S} UTC by {actor}; {status}"
    return text if len(text) <= _STATUS_CHARS else text[: _STATUS_CHARS - 1] + "…"


def mark_purged(
    conn: Connection,
    rows: list[tuple[str, str]],
    *,
    at: datetime,
    actor: str,
    reason: str,
) -> int:
    """Mark the ``(export_id, status)`` rows ``rows`` purged, if their status is still as read.

    ``status`` becomes :func:`purged_status`; ``purged: <reason>`` is added to
    ``reason`` (after the unmask reason, if any), so the row keeps both.

    Returns
    -------
    int
        How many rows were marked.
    """
    marked = 0
    for export_id, status in rows:
        row = (_LOG_TABLE.c.export_id == export_id) & (_LOG_TABLE.c.status == status)
        before = conn.execute(select(_LOG_TABLE.c.reason).where(row)).first()
        if before is None:
            continue  # changed since it was read: that change stands
        why = f"{before.reason}; purged: {reason}" if before.reason else f"purged: {reason}"
        purged = purged_status(status, at, actor)
        conn.execute(update(_LOG_TABLE).where(row).values(status=purged, reason=why))
        marked += 1
    return marked
