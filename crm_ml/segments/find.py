"""Finding a person in the list files written: which published or archived lists hold them.

A withdrawal, a complaint or an erasure request has to reach the lists already
sent. :func:`find_lists` reads every list file under the reports folder
(archives under ``_replaced`` and unpublished runs included) and every file
``export_log`` names elsewhere, and returns those that hold the person: by the
keyed pseudonymous id (匿名编号, recomputed with the export secret) in any
list, or by the customer id (客户编号) in an unmasked one. A person is every
record merged into the same survivor, so a list written before a merge is
found too. Each file comes with its ``export_log`` row, if it has one.

A masked list written under another key (an earlier key, the demo's) cannot be
searched with the one given: none of its 匿名编号 match. Rather than count it as
searched, :func:`find_lists` tells such files from the rest by their content: a
list written under the key given has 匿名编号 that stored customers have under
it. The files none of whose sampled 匿名编号 is a stored customer's are named as
not searched, so "in 0 files" is never said of lists that could not be read.
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
from crm_ml.store.schema import EXPORT_WRITTEN, Customer, ExportLog

log = logging.getLogger(__name__)

#: Columns of :attr:`ListsFound.files`.
FOUND_COLUMNS = (
    "path", "state", "rows", "matched_by",
    "export_id", "exported_at", "actor", "channel", "purpose", "unmasked", "status", "reason",
)  # fmt: skip
_LOG_COLUMNS = FOUND_COLUMNS[4:]
#: A progress bar is shown from this many files on.
PROGRESS_FROM = 20
_UNREADABLE = (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)
#: How many 匿名编号 of a list are kept to tell whether it was written under the key given.
KEY_SAMPLE = 64
#: Customer ids read from the store at a time while telling the lists' keys.
_KEY_CHUNK = 20_000
#: The file under the project's data folder where ``crm-ml demo`` keeps the key of its
#: lists when ``CRM_ML_EXPORT_SECRET`` is not set (see :func:`crm_ml.pipeline.run_demo`).
DEMO_SECRET_FILE = "demo_export_secret"


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
    other_key : tuple of pathlib.Path
        Masked lists written under another key than the one given: none of
        their sampled 匿名编号 is a stored customer's under it, so the person
        could not be looked for in them. Among ``searched``, never in ``files``.
    demo_secret : pathlib.Path, optional
        The demo's key file (:data:`DEMO_SECRET_FILE`), when it exists, holds
        another key than the one given and ``other_key`` is not empty: those
        lists may be the demo's.
    missing : tuple of pathlib.Path
        Files ``export_log`` says were written and are in place or archived,
        which are not there (deleted or moved by hand): whether they held the
        person cannot be checked.
    """

    customer_id: str
    records: tuple[str, ...]
    in_store: bool
    files: pd.DataFrame
    searched: int
    unreadable: tuple[Path, ...] = ()
    other_key: tuple[Path, ...] = ()
    demo_secret: Path | None = None
    missing: tuple[Path, ...] = ()

    def __str__(self) -> str:
        lines = [self._headline()]
        for (path, state), rows in self.files.groupby(["path", "state"], sort=False):
            first = rows.iloc[0]
            lines.append(f"  [{state}] {path}  ({first['rows']} row(s), by {first['matched_by']})")
            lines.extend(f"      {_logged_text(row)}" for _, row in rows.iterrows())
        if self.other_key:
            lines.append(self._other_key_text())
            lines.extend(f"  {path}" for path in self.other_key)
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} file(s) could not be read; check them by hand:")
            lines.extend(f"  {path}" for path in self.unreadable)
        if self.missing:
            lines.append(
                f"{len(self.missing)} list file(s) the export log records as written are not "
                "where it says (deleted or moved by hand?): whether they held "
                f"{self.customer_id} cannot be checked; find them, or where they were sent:"
            )
            lines.extend(f"  {path}" for path in self.missing)
        return "\n".join(lines)

    def _other_key_text(self) -> str:
        again = f"crm-ml lists find {self.customer_id}"
        text = (
            f"{len(self.other_key)} file(s) were written under another key than the "
            f"{SECRET_ENV} given (none of their 匿名编号 is a stored customer's under it), so "
            f"{self.customer_id} could not be looked for in them. Run `{again}` again with "
            f"{SECRET_ENV} set to the key they were written with"
        )
        if self.demo_secret is not None:
            text += (
                f"; the demo keeps the key of its lists in {self.demo_secret}: "
                f"`{SECRET_ENV}=$(cat {self.demo_secret}) {again}`"
            )
        return text + ":"

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
        not_searched = (
            f"; {len(self.other_key)} of them were written under another key and could not "
            "be searched (see below)"
            if self.other_key
            else ""
        )
        return (
            f"{who}: in {found} of {self.searched} list file(s) read"
            + (f" ({counts})" if found else "")
            + not_searched
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
    # The reason says why a list was unmasked, and which redactions and purges touched it.
    reason = f"; reason: {row['reason']}" if isinstance(row["reason"], str) else ""
    return (
        f"export_log {row['export_id']}: exported {row['exported_at']:%Y-%m-%d %H:%M:%S} UTC "
        f"by {row['actor']}, {row['channel']}/{row['purpose']}, {masked}; "
        f"status: {row['status']}{reason}"
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


def _matches(
    path: str, pseudo_ids: set[str], records: set[str]
) -> tuple[tuple[int, str] | None, list[str]]:
    """Return (rows, matched by) if the list at ``path`` holds the person, and its key sample.

    The sample is up to :data:`KEY_SAMPLE` of the list's 匿名编号, to tell
    whether it was written under the key given (:func:`_written_under_other_keys`);
    empty when there is nothing to tell: the person was found by 匿名编号 (so
    the key is right), the list names customer ids (searched by them whatever
    the key), or it has no rows. Raises if the file is unreadable.
    """
    frame = read_list(path)
    held = pd.Series(False, index=frame.index)
    by = []
    for column, wanted in (("pseudo_id", pseudo_ids), ("customer_id", records)):
        if column in frame:
            matched = frame[column].isin(wanted)
            held |= matched
            by += [column] if matched.any() else []
    hit = (int(held.sum()), " and ".join(by)) if by else None
    if "pseudo_id" not in frame or "customer_id" in frame or "pseudo_id" in by:
        return hit, []
    written = frame["pseudo_id"][frame["pseudo_id"] != ""]
    return hit, written.drop_duplicates().head(KEY_SAMPLE).tolist()


def _written_under_other_keys(store: Store, key: bytes, samples: dict[str, list[str]]) -> list[str]:
    """Return the files of ``samples`` none of whose sampled 匿名编号 is a customer's under ``key``.

    Every stored customer's 匿名编号 is computed (merged-away and erased
    records stay in ``customer``), a chunk at a time, until each file has one:
    a file written under ``key`` has some as soon as one of its sampled
    customers comes up; one written under another key never does.
    """
    files_of: dict[str, list[str]] = {}
    for path, written in samples.items():
        for pseudo_id in written:
            files_of.setdefault(pseudo_id, []).append(path)
    left = set(samples)
    query = select(Customer.customer_id).order_by(Customer.customer_id).limit(_KEY_CHUNK)
    last: str | None = None
    with store.connect() as conn:
        while left:
            after = query if last is None else query.where(Customer.customer_id > last)
            chunk = conn.execute(after).scalars().all()
            for customer_id in chunk:
                left.difference_update(files_of.get(pseudonymous_id(customer_id, key), ()))
            if len(chunk) < _KEY_CHUNK:
                break
            last = chunk[-1]
    return sorted(left)


def _demo_key_file(settings: Settings, key: bytes) -> Path | None:
    """Return the demo's key file if it holds another key than ``key``."""
    path = settings.data_dir / DEMO_SECRET_FILE
    try:
        held = path.read_bytes().strip()
    except OSError:
        return None
    return path if held and held != key else None


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
        (``CRM_ML_EXPORT_SECRET``). Masked lists made with another key cannot
        be searched with it: they are named in ``other_key`` (and logged at
        WARNING), not in ``files``. A weak key is used, with a warning.
    progress : bool
        Show a progress bar when there are many files to read.

    Returns
    -------
    ListsFound
        Its ``files`` frame has one row per file and ``export_log`` row; its
        ``other_key`` names the lists that could not be searched.

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
    found, unreadable, samples = [], [], {}
    bar = tqdm(paths, desc="lists", unit="file", disable=not progress or len(paths) < PROGRESS_FROM)
    for path in bar:
        try:
            hit, samples[path] = _matches(path, pseudo_ids, set(records))
        except _UNREADABLE as exc:
            log.warning("Could not read %s as a list: %s", path, exc)
            unreadable.append(Path(path))
            continue
        if hit is not None:
            found.append({"path": path, "state": _state(path, settings.reports_dir),
                          "rows": hit[0], "matched_by": hit[1]})  # fmt: skip
    other_key = _written_under_other_keys(store, key, {p: s for p, s in samples.items() if s})
    if other_key:
        log.warning(
            "%d of the %d list file(s) were written under another key than the one given: "
            "%s could not be looked for in them by 匿名编号",
            len(other_key), len(paths), customer_id,
        )  # fmt: skip
    files = _with_log_rows(pd.DataFrame(found, columns=list(FOUND_COLUMNS[:4])), logged)
    # Written lists and their archives; a run that stopped writing may rightly have none.
    status = logged["status"].fillna(EXPORT_WRITTEN)
    kept = logged.loc[(status == EXPORT_WRITTEN) | status.str.startswith("replaced"), "file"]
    missing = sorted({f for f in kept if isinstance(f, str) and not os.path.isfile(f)})
    if missing:
        log.warning("%d logged list file(s) are missing: %s", len(missing), ", ".join(missing))
    return ListsFound(
        customer_id, records, in_store, files, len(paths), tuple(unreadable),
        other_key=tuple(Path(p) for p in other_key),
        demo_secret=_demo_key_file(settings, key) if other_key else None,
        missing=tuple(Path(p) for p in missing),
    )  # fmt: skip


def _with_log_rows(found: pd.DataFrame, logged: pd.DataFrame) -> pd.DataFrame:
    """Join each found file to the ``export_log`` rows whose file it is (or empty log columns)."""
    joined = found.merge(logged, how="left", left_on="path", right_on="file")
    joined = joined.sort_values(["path", "exported_at"], na_position="first", kind="stable")
    return joined.reindex(columns=list(FOUND_COLUMNS)).reset_index(drop=True)
