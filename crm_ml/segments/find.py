"""Finding a person in the list files written: which published or archived lists hold them.

A withdrawal, a complaint or an erasure request has to reach the lists already
sent. :func:`find_lists` reads every list file under the reports folder
(archives under ``_replaced`` and unpublished runs included) and every file
``export_log`` names elsewhere, and returns those that hold the person: by the
keyed pseudonymous id (匿名编号, recomputed with the export secret) in any
list, or by the customer id (客户编号) in an unmasked one. A person is every
record merged into the same survivor, so a list written before a merge is
found too. Each file comes with its ``export_log`` row, if it has one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from tqdm.auto import tqdm

from crm_ml.config import Settings
from crm_ml.errors import ConfigError
from crm_ml.outputs import REPLACED_DIR, leftover_of
from crm_ml.rules.context import surviving_ids
from crm_ml.segments.export_log import file_of_row
from crm_ml.segments.headers import read_list
from crm_ml.segments.masking import SECRET_ENV, pseudonymous_id, require_secret
from crm_ml.store.connection import Store
from crm_ml.store.schema import Customer, ExportLog

log = logging.getLogger(__name__)

#: Columns of :attr:`ListsFound.files`.
FOUND_COLUMNS = (
    "path", "state", "rows", "matched_by",
    "export_id", "exported_at", "actor", "channel", "purpose", "unmasked", "status",
)  # fmt: skip
_LOG_COLUMNS = FOUND_COLUMNS[4:]
#: A progress bar is shown from this many files on.
PROGRESS_FROM = 20
_UNREADABLE = (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)


@dataclass(frozen=True)
class ListsFound:
    """What :func:`find_lists` found.

    Attributes
    ----------
    customer_id : str
        The id asked for.
    records : tuple of str
        The ids searched for: the person's surviving record first, then those
        merged into it.
    in_store : bool
        False when none of ``records`` is in the store (a mistyped id, or a
        customer deleted since the lists were written).
    files : pandas.DataFrame
        One row per file holding the person and per ``export_log`` row of it
        (log columns empty when it has none), default index, columns
        :data:`FOUND_COLUMNS`: ``path``; ``state`` (``published``,
        ``archived`` under ``_replaced``, ``unpublished`` in a staging or
        failed run, ``elsewhere`` outside the reports folder, ``leftover``: a
        hidden ``.NAME.<id>.tmp`` or ``.replaced`` file that a killed writer
        left, which no row describes); ``rows`` of the
        person in it; ``matched_by`` (``pseudo_id`` and/or ``customer_id``);
        and the log row's ``export_id, exported_at`` (naive UTC), ``actor,
        channel, purpose, unmasked, status``.
    searched : int
        How many files were read.
    unreadable : tuple of pathlib.Path
        Files that could not be read as a list (to check by hand).
    """

    customer_id: str
    records: tuple[str, ...]
    in_store: bool
    files: pd.DataFrame
    searched: int
    unreadable: tuple[Path, ...] = ()

    def __str__(self) -> str:
        lines = [self._headline()]
        for (path, state), rows in self.files.groupby(["path", "state"], sort=False):
            first = rows.iloc[0]
            lines.append(f"  [{state}] {path}  ({first['rows']} row(s), by {first['matched_by']})")
            lines.extend(f"      {_logged_text(row)}" for _, row in rows.iterrows())
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} file(s) could not be read; check them by hand:")
            lines.extend(f"  {path}" for path in self.unreadable)
        return "\n".join(lines)

    def _headline(self) -> str:
        who = self.customer_id
        if len(self.records) > 1:
            others = [r for r in self.records if r != who]
            who += f" (the same person as {', '.join(others)})"
        note = (
            ""
            if self.in_store
            else f"; {self.customer_id} is not in the store (mistyped, or deleted since)"
        )
        found = self.files["path"].nunique()
        states = self.files.drop_duplicates("path")["state"].value_counts()
        counts = ", ".join(f"{n} {state}" for state, n in states.items())
        return (
            f"{who}: in {found} of {self.searched} list file(s) read"
            + (f" ({counts})" if found else "")
            + note
        )


def _logged_text(row: pd.Series) -> str:
    if row["state"] == "leftover":
        return (
            "left by a list writer that was interrupted: delete it (the next export to this "
            "folder deletes it once it is an hour old)"
        )
    if pd.isna(row["export_id"]):
        return "not in export_log"
    masked = "UNMASKED" if row["unmasked"] else "masked"
    return (
        f"export_log {row['export_id']}: exported {row['exported_at']:%Y-%m-%d %H:%M:%S} UTC "
        f"by {row['actor']}, {row['channel']}/{row['purpose']}, {masked}; "
        f"status: {row['status']}"
    )


def _secret_key(secret: str | bytes | None, customer_id: str) -> bytes:
    """Return the key to recompute pseudonymous ids with; a weak one is used, with a warning."""
    if not secret:
        raise ConfigError(
            f"Finding {customer_id} in the written lists needs the key their pseudonymous ids "
            f"(匿名编号) were made with, and none was given. Set {SECRET_ENV} to the key the "
            "lists were exported with (in Python, pass secret=); without it masked lists "
            "cannot be searched."
        )
    try:
        return require_secret(secret)
    except ConfigError as exc:
        # Lists made with a weak key must still be searchable; only new exports refuse it.
        log.warning("%s Searching with it anyway.", exc)
        return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _person(store: Store, customer_id: str) -> tuple[tuple[str, ...], bool]:
    """Return the person's records (survivor first, then merged ids) and whether any is stored."""
    with store.connect() as conn:
        id_map = surviving_ids(conn)
        survivor = id_map.get(customer_id, customer_id)
        records = (survivor, *sorted(m for m, s in id_map.items() if s == survivor))
        stored = conn.execute(
            select(Customer.customer_id).where(Customer.customer_id.in_(records)).limit(1)
        ).first()
    return records, stored is not None


def _log_rows(store: Store, reports_dir: Path) -> pd.DataFrame:
    """Every ``export_log`` row with ``file``: the absolute path of its file now, or None."""
    table = ExportLog.__table__
    with store.connect() as conn:
        rows = conn.execute(select(*(table.c[c] for c in (*_LOG_COLUMNS, "path")))).all()
    frame = pd.DataFrame(rows, columns=[*_LOG_COLUMNS, "path"])
    frame["file"] = [
        _absolute(file_of_row(path, status, reports_dir))
        for path, status in zip(frame["path"], frame["status"], strict=True)
    ]
    return frame.drop(columns="path")


def _absolute(path: Path | None) -> str | None:
    return None if path is None else os.path.abspath(path)


def _is_list(name: str) -> bool:
    """Tell a CSV file, or what a killed writer left of one (:func:`crm_ml.outputs.leftover_of`)."""
    return (leftover_of(name) or name).endswith(".csv")


def _list_files(reports_dir: Path, logged: Iterable[str | None]) -> list[str]:
    """Every list file under ``reports_dir`` and beside every logged file, as absolute paths."""
    # A purged or replaced file has no path (missing: NaN in a text column).
    elsewhere = {Path(p).parent for p in logged if isinstance(p, str)}
    places = [(str(folder), names) for folder, _, names in os.walk(reports_dir)]
    places += [(str(folder), _names(folder)) for folder in elsewhere]
    found = {os.path.abspath(os.path.join(f, n)) for f, ns in places for n in ns if _is_list(n)}
    return sorted(p for p in found if os.path.isfile(p))


def _names(folder: Path) -> list[str]:
    """List the names in a folder an export wrote to; none if it is gone."""
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _state(path: str, reports_dir: Path) -> str:
    if leftover_of(os.path.basename(path)):
        return "leftover"
    try:
        parts = Path(path).relative_to(os.path.abspath(reports_dir)).parts
    except ValueError:
        return "elsewhere"
    if REPLACED_DIR in parts[:-1]:
        return "archived"
    return "unpublished" if parts[0].startswith("_") else "published"


def _matches(path: str, pseudo_ids: set[str], records: set[str]) -> tuple[int, str] | None:
    """Return (rows, matched by) if the list at ``path`` holds the person; raises if unreadable."""
    frame = read_list(path)
    held = pd.Series(False, index=frame.index)
    by = []
    for column, wanted in (("pseudo_id", pseudo_ids), ("customer_id", records)):
        if column in frame:
            matched = frame[column].isin(wanted)
            held |= matched
            by += [column] if matched.any() else []
    return (int(held.sum()), " and ".join(by)) if by else None


def find_lists(
    store: Store,
    settings: Settings,
    customer_id: str,
    *,
    secret: str | bytes | None,
    progress: bool = False,
) -> ListsFound:
    """Return the list files written that hold a person, with their ``export_log`` rows.

    Parameters
    ----------
    store : Store
    settings : Settings
        ``settings.reports_dir`` is searched, ``_replaced`` archives included.
    customer_id : str
        Any of the person's ids: a merged-away id finds the survivor's lists,
        and the survivor's id those written for the merged-away records.
    secret : str or bytes
        The key the lists' pseudonymous ids were made with
        (``CRM_ML_EXPORT_SECRET``). Lists made with another key are not found
        through their pseudonymous ids. A weak key is used, with a warning.
    progress : bool
        Show a progress bar when there are many files to read.

    Returns
    -------
    ListsFound
        Its ``files`` frame has one row per file and ``export_log`` row.

    Raises
    ------
    ConfigError
        Without a secret (naming ``CRM_ML_EXPORT_SECRET``).
    """
    key = _secret_key(secret, customer_id)
    records, in_store = _person(store, customer_id)
    pseudo_ids = {pseudonymous_id(record, key) for record in records}
    logged = _log_rows(store, settings.reports_dir)
    paths = _list_files(settings.reports_dir, logged["file"])
    found, unreadable = [], []
    bar = tqdm(paths, desc="lists", unit="file", disable=not progress or len(paths) < PROGRESS_FROM)
    for path in bar:
        try:
            hit = _matches(path, pseudo_ids, set(records))
        except _UNREADABLE as exc:
            log.warning("Could not read %s as a list: %s", path, exc)
            unreadable.append(Path(path))
            continue
        if hit is not None:
            found.append({"path": path, "state": _state(path, settings.reports_dir),
                          "rows": hit[0], "matched_by": hit[1]})  # fmt: skip
    files = _with_log_rows(pd.DataFrame(found, columns=list(FOUND_COLUMNS[:4])), logged)
    return ListsFound(customer_id, records, in_store, files, len(paths), tuple(unreadable))


def _with_log_rows(found: pd.DataFrame, logged: pd.DataFrame) -> pd.DataFrame:
    """Join each found file to the ``export_log`` rows whose file it is (or empty log columns)."""
    joined = found.merge(logged, how="left", left_on="path", right_on="file")
    joined = joined.sort_values(["path", "exported_at"], na_position="first", kind="stable")
    return joined.reindex(columns=list(FOUND_COLUMNS)).reset_index(drop=True)
