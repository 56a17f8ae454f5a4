"""Writing output files safely: paths are checked first; a file appears whole or not at all.

Shared by every writer of files (reject reports, feature files, segment lists,
Parquet exports). A path that cannot work (a folder where a file should go, a
file where a folder should go) is refused with a :class:`ConfigError` before
anything is written.

A writer killed mid-way (power cut, ``kill -9``) cannot clean up: it leaves the
file it was writing (``.NAME.<id>.tmp``) or one it had set aside
(``.NAME.<id>.replaced``) hidden beside ``NAME``. :func:`leftover_of` tells them
apart, so that ``crm-ml lists find`` reads them too (they can hold personal
data) and a later writer removes the old ones (:func:`remove_old_leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from crm_ml.errors import ConfigError

#: Where, under a report date's folder, a re-run keeps the files it replaced.
REPLACED_DIR = "_replaced"
#: An archive folder's name: when it was made (naive UTC), ``20261123T200608Z``,
#: or ``…Z-1a2b`` for a second archive within the same second.
_ARCHIVE_TIME = "%Y%m%dT%H%M%S"
_ARCHIVE_NAME = re.compile(r"^(?P<at>\d{8}T\d{6})Z(?:-[0-9a-f]+)?$")
#: A file a writer stages or sets aside beside ``NAME`` (see :func:`leftover_of`).
_LEFTOVER_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.(?P<kind>tmp|replaced)$")
#: A leftover whose folder entry has not changed for this long is no writer's any more:
#: writers hold one for the seconds a list or a transaction takes.
LEFTOVER_AGE_S = 3600.0


def _label(path: Path, what: str) -> str:
    return f"{what} {path}" if what else str(path)


def _refuse_file_in_the_way(folder: Path, label: str) -> None:
    """Refuse to write ``label`` when ``folder``, or its nearest existing parent, is a file."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise ConfigError(
                    f"Cannot write {label}: {candidate} is a file, but a folder is needed "
                    "there. Choose another folder, or move the file away."
                )
            return


def check_output_folder(folder: Path, *, what: str = "") -> Path:
    """Return ``folder`` if it is a folder or can be created as one.

    Raises
    ------
    ConfigError
        If ``folder`` or one of its parents is a file.
    """
    folder = Path(folder)
    _refuse_file_in_the_way(folder, _label(folder, what))
    return folder


def check_output_file(path: Path, *, what: str = "") -> Path:
    """Return ``path`` if a file can be written there (an existing file is replaced).

    Raises
    ------
    ConfigError
        If ``path`` is a folder, or its folder is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"Cannot write {_label(path, what)}: it is a folder; expected a file name. "
            "Choose a file name, or move the folder away."
        )
    _refuse_file_in_the_way(path.parent, _label(path, what))
    return path


def cannot_write(path: Path, what: str, exc: OSError) -> ConfigError:
    """Return the error for a file system that refuses to write ``path``."""
    return ConfigError(
        f"Cannot write {_label(path, what)}: {exc.strerror or exc}. "
        "Check that its folder exists and that you may write there."
    )


#: Mode of a private file (:func:`staged_file` with ``private=True``): its owner's only.
PRIVATE_FILE = 0o600
#: Mode of a folder holding personal data (a store, an export, a report about one person).
PRIVATE_FOLDER = 0o700


def _new_staging_file(path: Path, private: bool) -> Path:
    # mkstemp would make the file 0600, but lists and reports are shared: create it as
    # open() would, 0666 less the umask, or with the mode of the file it replaces.
    # A private file is the owner's only from its creation, also under a lax umask.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(
        os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE if private else 0o666)
    )
    if private:
        os.chmod(temp, PRIVATE_FILE)  # the umask can only narrow it; make it exact
        return temp
    with contextlib.suppress(FileNotFoundError):
        os.chmod(temp, stat.S_IMODE(path.stat().st_mode))
    return temp


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def staged_file(path: Path, *, what: str = "", private: bool = False) -> Iterator[Path]:
    """Yield an empty file beside ``path`` to write; on success it replaces ``path`` atomically.

    ``path`` appears complete or not at all: on any error the staged file is
    removed and an existing ``path`` is left as it was. A ``private`` file
    (personal data) is readable by its owner only (:data:`PRIVATE_FILE`) from
    its creation, also when it replaces a shared one; otherwise it takes the
    replaced file's mode, or the umask's.

    Raises
    ------
    ConfigError
        If ``path`` is a folder, its folder is a file, or the file system refuses
        to create or rename the file (no permission). Errors of the writing
        itself are raised unchanged.
    """
    path = check_output_file(path, what=what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = _new_staging_file(path, private)
    except OSError as exc:
        raise cannot_write(path, what, exc) from exc
    try:
        yield temp
        _publish(temp, path, what)
    finally:
        temp.unlink(missing_ok=True)


def _publish(temp: Path, path: Path, what: str) -> None:
    # Only these steps are wrapped: the writer's own errors reach the caller unchanged.
    try:
        _fsync(temp)
        os.replace(temp, path)
    except OSError as exc:
        raise cannot_write(path, what, exc) from exc


@contextlib.contextmanager
def set_aside(paths: list[Path], *, what: str = "") -> Iterator[None]:
    """Move ``paths`` out of the way for the block: deleted if it succeeds, put back if not.

    So files can be removed together with a store transaction (run inside the
    block): if it fails, every file is where it was. ``what`` names them in errors.
    """
    moved: list[tuple[Path, Path]] = []
    try:
        for path in paths:
            aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.replaced")
            try:
                os.replace(path, aside)
            except FileNotFoundError:
                continue  # already gone: nothing to remove
            except OSError as exc:
                raise cannot_write(path, what, exc) from exc
            moved.append((path, aside))
        yield
    except BaseException:
        for path, aside in reversed(moved):
            os.replace(aside, path)
        raise
    for _, aside in moved:
        aside.unlink(missing_ok=True)


def leftover_of(name: str) -> str | None:
    """Return the file name a staged or set-aside file stands for, or None if ``name`` is not one.

    ``.list.csv.1a2b3c4d5e6f.tmp`` and ``.list.csv.1a2b3c4d5e6f.replaced`` → ``list.csv``.
    """
    named = _LEFTOVER_NAME.match(name)
    return named["name"] if named else None


def remove_old_leftovers(folder: Path, *, suffix: str, now: float | None = None) -> list[Path]:
    """Delete the leftovers of killed writers of ``*suffix`` files in ``folder``; return them.

    Only those untouched for :data:`LEFTOVER_AGE_S` (by ``st_ctime``, which a
    rename sets): a running writer's files are younger. A staged file was never
    complete, and a set-aside one was on its way out; neither is put back, since
    either may hold personal data that a withdrawal has since removed.
    """
    now = time.time() if now is None else now
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        name = leftover_of(entry.name)
        if name is None or not name.endswith(suffix):
            continue
        if now - entry.stat().st_ctime >= LEFTOVER_AGE_S:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def archive_name(at: datetime) -> str:
    """Return the name of an archive folder made at ``at`` (naive UTC): ``20261123T200608Z``."""
    return f"{at:{_ARCHIVE_TIME}}Z"


def archive_time(name: str) -> datetime | None:
    """Return when the archive folder ``name`` was made, or None if it is not named as one."""
    named = _ARCHIVE_NAME.match(name)
    return datetime.strptime(named["at"], _ARCHIVE_TIME) if named else None
