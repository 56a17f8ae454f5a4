"""A retention period for what crm_ml keeps about people (PIPL Art. 19: no longer than needed).

Scores, tag history, segment snapshots and report folders are kept with no time
limit as they are written. :func:`purge_before` deletes what is older than a
date:

- in the store, in one transaction: ``score`` rows of earlier scoring dates,
  segment snapshots (``segment_member`` and their ``segment_snapshot`` headers)
  of earlier dates, and ``customer_tag`` memberships that ended by the date;
- under the reports folder: every published ``<date>/`` folder of an earlier
  date (pages, notebooks, lists, ``_replaced`` archives, customer 360 reports),
  whose ``export_log`` rows are marked ``purged at <time> UTC by <actor>`` as
  :func:`crm_ml.segments.archive_purge.purge_archive` marks them, and the
  failed runs in ``_failed/`` of earlier dates.

Files are set aside first and deleted only once the transaction is committed
(put back if it is not), as the archive purge does.

A few rows before the date are kept because crm_ml still needs them to work:

- each model's latest scoring run: rules, model tags, lists and the explorer
  read a model's latest scores up to their date (``latest_scores``), and a model
  whose champion is gone is never scored again;
- each static segment's latest snapshot: a static segment's members are those
  of its earliest snapshot, copied into each later one (``snapshot_segment``);
- rule and model memberships that ended at their tag's latest run: ``tags
  apply`` reads from them how far the tag's history reaches, and a re-run at
  that date or ``crm-ml tags undo`` reopens them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Table, and_, false, func, not_, or_, select

from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.features.spec import when_text
from crm_ml.outputs import set_aside
from crm_ml.rules import as_timestamp
from crm_ml.segments.export_log import file_of_row, mark_purged
from crm_ml.store.admin import utc_now
from crm_ml.store.connection import Store
from crm_ml.store.purges import record_purge
from crm_ml.store.schema import (
    CustomerTag,
    ExportLog,
    Score,
    SegmentDefinition,
    SegmentMember,
    SegmentSnapshot,
)
from crm_ml.tags.manual import require_audit

log = logging.getLogger(__name__)

#: Where :mod:`crm_ml.reporting` keeps failed runs: ``<as_of>-<report>-<id>.ipynb``.
FAILED_DIR = "_failed"
_DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FAILED_RUN = re.compile(r"^(?P<day>\d{4}-\d{2}-\d{2})-")
_CUSTOMER_360 = "customer_360-"
_AUTO_SOURCES = ("rule", "model")  # crm_ml.tags.apply.AUTO_SOURCES, without importing Ibis

_SCORE = cast(Table, Score.__table__)
_MEMBER = cast(Table, SegmentMember.__table__)
_SNAPSHOT = cast(Table, SegmentSnapshot.__table__)
_TAG = cast(Table, CustomerTag.__table__)


@dataclass(frozen=True)
class RetentionSummary:
    """What :func:`purge_before` deleted (or, in a dry run, would delete).

    Attributes
    ----------
    before : datetime
        Data before this time (naive UTC) was purged.
    actor, reason : str
        Who purged and why.
    dry_run : bool
        True when nothing was changed.
    rows : mapping of str to int
        Rows deleted per table: ``score``, ``segment_member``, ``segment_snapshot``,
        ``customer_tag``.
    kept : tuple of str
        Rows before the date that were kept, and why.
    report_folders : tuple of pathlib.Path
        The published ``<reports>/<date>/`` folders deleted.
    customer_360s : int
        Customer 360 reports among them.
    failed_runs : tuple of pathlib.Path
        The failed runs deleted from ``<reports>/_failed/``.
    files : int
        Files deleted.
    rows_marked : int
        ``export_log`` rows marked purged.
    left_alone : tuple of pathlib.Path
        Entries of ``_failed/`` not named with a date: not purged.
    """

    before: datetime
    actor: str
    reason: str
    dry_run: bool
    rows: Mapping[str, int]
    kept: tuple[str, ...] = ()
    report_folders: tuple[Path, ...] = ()
    customer_360s: int = 0
    failed_runs: tuple[Path, ...] = ()
    files: int = 0
    rows_marked: int = 0
    left_alone: tuple[Path, ...] = ()

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        head = "Dry run, nothing changed: a retention purge" if self.dry_run else "Retention purge"
        lines = [
            f"{head} of data before {when_text(self.before)} UTC by {self.actor} "
            f"({self.reason}) {verb}:"
        ]
        lines += [f"  {table}: {n:,} row(s)" for table, n in self.rows.items()]
        lines.append(
            f"  reports: {len(self.report_folders)} dated folder(s) "
            f"({self.customer_360s} customer 360 report(s)) and {len(self.failed_runs)} "
            f"failed run(s), {self.files:,} file(s); {self.rows_marked:,} export_log row(s) "
            f"{'to mark' if self.dry_run else 'marked'} purged"
        )
        lines += [f"    {path}" for path in (*self.report_folders, *self.failed_runs)]
        if self.kept:
            lines.append("Kept before the date, because crm_ml still reads them:")
            lines += [f"  {note}" for note in self.kept]
        if self.left_alone:
            lines.append("Left alone in _failed (not named with a date, check by hand):")
            lines += [f"  {path}" for path in self.left_alone]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the store


def _moment(value: Any) -> datetime:
    # SQLite hands back aggregated timestamps as text.
    return pd.Timestamp(value).to_pydatetime()


def _score_rows(conn: Connection, cutoff: datetime, kept: list[str]) -> ColumnElement[bool]:
    """Scores before ``cutoff``, but each model's latest run (rules and lists read it)."""
    runs = conn.execute(
        select(Score.model_name, func.max(Score.as_of)).group_by(Score.model_name)
    ).all()
    due = []
    for model, latest in sorted(runs):
        latest = _moment(latest)
        due.append((Score.model_name == model) & (Score.as_of < min(cutoff, latest)))
        if latest < cutoff:
            kept.append(
                f"score: {model}'s latest run, as of {when_text(latest)}: rules, model tags, "
                "lists and the explorer read it until the model is scored again"
            )
    return or_(false(), *due)


def _static_bounds(conn: Connection, cutoff: datetime, kept: list[str]) -> dict[str, datetime]:
    """Each static segment's latest snapshot date before ``cutoff``, kept: it holds its members."""
    static = select(SegmentDefinition.name).where(SegmentDefinition.kind == "static")
    bounds: dict[str, datetime] = {}
    for table in (_SNAPSHOT, _MEMBER):
        found = conn.execute(
            select(table.c.segment_id, func.max(table.c.as_of))
            .where(table.c.segment_id.in_(static), table.c.as_of < cutoff)
            .group_by(table.c.segment_id)
        ).all()
        for segment, latest in found:
            bounds[segment] = max(_moment(latest), bounds.get(segment, datetime.min))
    for segment, latest in sorted(bounds.items()):
        kept.append(
            f"segment snapshot: static segment {segment}'s of {when_text(latest)}: its members "
            "are those of its earliest snapshot, copied into each later one"
        )
    return bounds


def _snapshot_rows(table: Table, cutoff: datetime, static: Mapping[str, datetime]) -> Any:
    dynamic = table.c.segment_id.not_in(list(static)) & (table.c.as_of < cutoff)
    frozen = [(table.c.segment_id == s) & (table.c.as_of < at) for s, at in static.items()]
    return or_(dynamic, *frozen)


def _tag_rows(conn: Connection, cutoff: datetime, kept: list[str]) -> ColumnElement[bool]:
    """Memberships ended by ``cutoff``, but those ended at their rule or model tag's latest run."""
    auto = CustomerTag.source.in_(_AUTO_SOURCES)
    runs = conn.execute(
        select(CustomerTag.tag_id, func.max(CustomerTag.valid_from), func.max(CustomerTag.valid_to))
        .where(auto)
        .group_by(CustomerTag.tag_id)
    ).all()
    needed = []
    for tag, opened, ended in sorted(runs):
        latest = max(_moment(t) for t in (opened, ended) if t is not None)
        if ended is not None and latest <= cutoff:
            needed.append((CustomerTag.tag_id == tag) & auto & (CustomerTag.valid_to == latest))
            kept.append(
                f"customer_tag: {tag}'s memberships ended at its latest run, "
                f"{when_text(latest)}: `tags apply` reads how far the history reaches from "
                "them, and a re-run of that date or `crm-ml tags undo` reopens them"
            )
    ended_by = CustomerTag.valid_to.is_not(None) & (CustomerTag.valid_to <= cutoff)
    return and_(ended_by, not_(or_(false(), *needed)))


def _store_deletions(
    conn: Connection, cutoff: datetime
) -> tuple[list[tuple[Table, Any]], list[str]]:
    """Return ``(table, rows)`` to delete before ``cutoff``, and notes on what is kept."""
    kept: list[str] = []
    scores = _score_rows(conn, cutoff, kept)
    static = _static_bounds(conn, cutoff, kept)
    tags = _tag_rows(conn, cutoff, kept)
    deletions = [
        (_SCORE, scores),
        (_MEMBER, _snapshot_rows(_MEMBER, cutoff, static)),
        (_SNAPSHOT, _snapshot_rows(_SNAPSHOT, cutoff, static)),
        (_TAG, tags),
    ]
    return deletions, kept


def _purge_store(
    conn: Connection, cutoff: datetime, *, delete: bool
) -> tuple[dict[str, int], list[str]]:
    """Count (and with ``delete``, delete) the rows before ``cutoff``; return counts and notes."""
    deletions, kept = _store_deletions(conn, cutoff)
    counts = {}
    for table, rows in deletions:
        counts[table.name] = conn.execute(
            select(func.count()).select_from(table).where(rows)
        ).scalar_one()
        if delete and counts[table.name]:
            conn.execute(table.delete().where(rows))
    return counts, kept


# --------------------------------------------------------------------------- the reports folder


def _day(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, "%Y-%m-%d")
    except ValueError:
        return None


def dated_report_folders(reports_dir: Path, cutoff: datetime) -> list[Path]:
    """Return the published ``<reports_dir>/<YYYY-MM-DD>/`` folders of a date before ``cutoff``."""
    found = []
    for folder in sorted(Path(reports_dir).iterdir()) if Path(reports_dir).is_dir() else ():
        day = _day(folder.name) if _DAY_FOLDER.match(folder.name) else None
        if day is not None and day < cutoff and folder.is_dir() and not folder.is_symlink():
            found.append(folder)
    return found


def failed_runs(reports_dir: Path, cutoff: datetime) -> tuple[list[Path], list[Path]]:
    """Return the failed runs in ``_failed/`` dated before ``cutoff``, and the entries not dated."""
    folder = Path(reports_dir) / FAILED_DIR
    due, undated = [], []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        named = _FAILED_RUN.match(entry.name)
        day = _day(named["day"]) if named else None
        if day is None or not entry.is_file():
            undated.append(entry)
        elif day < cutoff:
            due.append(entry)
    return due, undated


def _files_in(folder: Path) -> list[Path]:
    # Symbolic links are deleted as links: what they point to is never reached.
    return [Path(root, name) for root, _, names in os.walk(folder) for name in names]


def _logged_rows(conn: Connection, folders: list[Path], reports_dir: Path) -> list[tuple[str, str]]:
    """``(export_id, status)`` of the ``export_log`` rows whose file is under one of ``folders``."""
    if not folders:
        return []
    under = tuple(f"{os.path.abspath(folder)}{os.sep}" for folder in folders)
    rows = conn.execute(select(ExportLog.export_id, ExportLog.path, ExportLog.status)).all()
    found = []
    for export_id, path, status in rows:
        file = file_of_row(path, status, reports_dir)  # None once purged or replaced unkept
        if file is not None and os.path.abspath(file).startswith(under):
            found.append((export_id, status))
    return found


def _remove_empty(folder: Path) -> None:
    for root, _, _ in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):  # not empty: something was added meanwhile
            os.rmdir(root)


# --------------------------------------------------------------------------- the purge


def _check_before(before: Any) -> datetime:
    """Read ``before`` as a time, refusing one after now: it would delete today's work."""
    cutoff = as_timestamp(before, what="--before")
    now = utc_now()
    if cutoff > now:
        example = now - timedelta(days=183)
        raise ValidationError(
            f"--before {when_text(cutoff)} is in the future (now {now:%Y-%m-%d %H:%M} UTC); "
            "expected a past date: everything older than it is deleted, so a later date would "
            "delete the latest scores, lists and reports. For a retention period of six "
            f"months, give --before {example:%Y-%m-%d}."
        )
    return cutoff


def purge_before(
    store: Store,
    settings: Settings,
    *,
    before: Any,
    actor: str,
    reason: str,
    dry_run: bool = False,
) -> RetentionSummary:
    """Delete scores, segment snapshots, ended tag memberships and reports older than ``before``.

    Parameters
    ----------
    store : Store
    settings : Settings
        Reports are the ``<date>/`` folders and ``_failed/`` runs under
        ``settings.reports_dir``.
    before : datetime-like
        Data before this time (UTC; a date means midnight) is purged: scores and
        snapshots as of an earlier date, memberships that ended at it or earlier,
        report folders and failed runs of an earlier date. Not after now.
    actor, reason : str
        Who purges and why: in the summary and the log, and in each ``export_log``
        row of a deleted list (``purged at <time> UTC by <actor>; <status before>``,
        ``reason`` gains ``purged: <reason>``).
    dry_run : bool
        Count what would go, change nothing.

    Returns
    -------
    RetentionSummary

    Raises
    ------
    ValidationError
        Without an actor or a reason, or for a ``before`` after now.
    ConfigError
        If ``before`` cannot be read as a date, or a file cannot be moved
        (then nothing is deleted and no row is changed).
    """
    require_audit(actor, reason, work="A retention purge", kept=" for the audit trail")
    cutoff = _check_before(before)
    folders = dated_report_folders(settings.reports_dir, cutoff)
    failed, undated = failed_runs(settings.reports_dir, cutoff)
    files = [path for folder in folders for path in _files_in(folder)] + failed
    if dry_run:
        with store.connect() as conn:
            counts, kept = _purge_store(conn, cutoff, delete=False)
            marked = len(_logged_rows(conn, folders, settings.reports_dir))
    else:
        # Set aside first, so the files are deleted only once the rows are committed
        # (and put back if they are not): the context managers exit in reverse order.
        with set_aside(files, what="the report file"), store.begin() as conn:
            counts, kept = _purge_store(conn, cutoff, delete=True)
            rows = _logged_rows(conn, folders, settings.reports_dir)
            at = utc_now()
            marked = mark_purged(conn, rows, at=at, actor=actor, reason=reason)
            deleted = {**counts, "report folders": len(folders), "files": len(files),
                       "export_log rows marked": marked}  # fmt: skip
            record_purge(conn, at, cutoff, deleted, actor=actor, reason=reason)
        for folder in folders:
            _remove_empty(folder)
    summary = RetentionSummary(
        before=cutoff,
        actor=actor,
        reason=reason,
        dry_run=dry_run,
        rows=counts,
        kept=tuple(kept),
        report_folders=tuple(folders),
        customer_360s=sum(
            1 for f in files if f.name.startswith(_CUSTOMER_360) and f.suffix == ".html"
        ),
        failed_runs=tuple(failed),
        files=len(files),
        rows_marked=marked,
        left_alone=tuple(undated),
    )
    log.info("%s", summary)
    return summary
