"""Tag sync: per-tag files of who joined and who left since the last sync.

Each destination folder keeps its own watermark in a small state file
(``.crm_ml_tag_sync.json``: tag name -> last synced ``as_of``), written
atomically and only after the data file is in place. A sync compares the
members at the watermark with the members at ``as_of`` from the tag history,
so it is exact however many times tags were applied in between, and
re-running a sync for the same ``as_of`` yields no changes. The first sync
of a tag sends every member as ``added``.

Files hold internal customer ids and tag names only, no personal data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd

from crm_ml.errors import ValidationError
from crm_ml.rules import as_timestamp
from crm_ml.store.connection import Store
from crm_ml.tags.definitions import get_tag_definition
from crm_ml.tags.files import atomic_write, write_excel_csv, write_jsonl
from crm_ml.tags.history import tag_changes

log = logging.getLogger(__name__)

STATE_FILE = ".crm_ml_tag_sync.json"


@dataclass(frozen=True)
class SyncResult:
    """What one tag sync wrote.

    Attributes
    ----------
    tag : str
    path : pathlib.Path
        The data file.
    since : datetime or None
        The previous watermark (``None`` on a first, full sync).
    as_of : datetime
        The new watermark.
    added, removed : int
        Rows of each kind in the file.
    """

    tag: str
    path: Path
    since: datetime | None
    as_of: datetime
    added: int
    removed: int


def read_watermarks(out_dir: Path) -> dict[str, datetime]:
    """Return the last synced ``as_of`` per tag for a destination folder."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): datetime.fromisoformat(v) for k, v in raw["watermarks"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            f"The tag sync state {path} is unreadable ({exc}). Restore it from backup, or delete "
            "it to send every tag in full on the next sync."
        ) from exc


def _write_watermark(out_dir: Path, tag: str, as_of: datetime) -> None:
    marks = read_watermarks(out_dir)
    marks[tag] = as_of
    body = {"watermarks": {k: v.isoformat() for k, v in sorted(marks.items())}}

    def write(handle: IO[str]) -> None:
        json.dump(body, handle, indent=2, ensure_ascii=False)

    atomic_write(Path(out_dir) / STATE_FILE, write, encoding="utf-8")


def _stamp(on: datetime) -> str:
    return f"{on:%Y%m%d}" if on == datetime(on.year, on.month, on.day) else f"{on:%Y%m%dT%H%M%S}"


def sync_tag(
    store: Store,
    tag: str,
    *,
    as_of: Any,
    out_dir: Path,
    fmt: Literal["csv", "jsonl"] = "csv",
    full: bool = False,
) -> SyncResult:
    """Write the changes of ``tag`` since the last sync to ``out_dir`` and move the watermark.

    Parameters
    ----------
    store : Store
    tag : str
    as_of : datetime-like
        Members at this date are compared with members at the watermark.
    out_dir : pathlib.Path
        Destination folder; it holds the watermark file.
    fmt : {"csv", "jsonl"}
        CSV (UTF-8 with BOM) or JSON Lines.
    full : bool
        Ignore the watermark and send every current member as ``added``.

    Returns
    -------
    SyncResult

    The file has columns ``customer_id, tag, change, as_of, since``; ``change``
    is ``added`` or ``removed``.

    Raises
    ------
    ValidationError
        If ``as_of`` is before the watermark, or ``fmt`` is unknown.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValidationError(f"Unknown sync format {fmt!r}; expected 'csv' or 'jsonl'.")
    get_tag_definition(store, tag)
    on, out = as_timestamp(as_of), Path(out_dir)
    since = None if full else read_watermarks(out).get(tag)
    if since is not None and on < since:
        raise ValidationError(
            f"Tag {tag!r} was already synced to {out} as of {since:%Y-%m-%d}; "
            f"as_of {on:%Y-%m-%d} is earlier. Sync forward, or pass full=True."
        )
    changes = tag_changes(store, tag, since, on)
    frame = changes.assign(
        tag=tag, as_of=on.isoformat(), since=since.isoformat() if since else None
    )
    frame = frame[["customer_id", "tag", "change", "as_of", "since"]]
    path = out / f"tag_{tag}_{_stamp(on)}.{fmt}"
    (write_excel_csv if fmt == "csv" else write_jsonl)(frame, path)
    _write_watermark(out, tag, on)
    counts = changes["change"].value_counts()
    result = SyncResult(
        tag, path, since, on, int(counts.get("added", 0)), int(counts.get("removed", 0))
    )
    log.info("Synced tag %s to %s: %d added, %d removed", tag, path, result.added, result.removed)
    return result


def sync_tags(
    store: Store,
    tags: list[str],
    *,
    as_of: Any,
    out_dir: Path,
    fmt: Literal["csv", "jsonl"] = "csv",
) -> pd.DataFrame:
    """Sync several tags (see :func:`sync_tag`).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``tag``; columns ``path, since, as_of, added, removed``.
    """
    results = [sync_tag(store, t, as_of=as_of, out_dir=out_dir, fmt=fmt) for t in tags]
    return pd.DataFrame([r.__dict__ for r in results]).set_index("tag")
