"""Report runs: execute a notebook with papermill, publish it only if it succeeds.

A run executes ``notebooks/<name>.ipynb`` into a staging folder, passing
``as_of`` and ``output_dir`` (where the notebook writes its CSV lists) as
parameters. On success it converts the notebook to HTML and publishes, under
``reports/<as_of>/``::

    <name>.ipynb     the executed notebook
    <name>.html      a static page that reads well offline (no code cells)
    <name>/          the files the notebook wrote to ``output_dir`` (lists …)

replacing an earlier run of the same report and date, whose files are kept
under ``reports/<as_of>/_replaced/<time of the later run>/<name>/``: a list
staff already worked from is archived, never deleted. A report about one
customer (a ``customer_id`` parameter) is published as ``<name>-<customer_id>``,
so runs for two customers on one date do not replace each other. On failure
the last good report stays, the failed notebook goes to ``reports/_failed/``
and :class:`ReportFailedError` says which cell failed and where to look.

Parameters given with ``-p`` must be declared in the notebook's ``parameters``
cell and are converted to the type of their default before anything runs: a
typo or a value that does not parse is refused, not ignored.

Exports the notebook makes are logged in ``export_log`` with their staging
path; publishing rewrites those rows to the published path in the transaction
that covers the move, and a failed run marks them ``not published``. Rows are
never deleted, but each says what became of its file: a re-run for the same
date marks the earlier run's rows ``replaced by a later run at <time> UTC;
archived in <folder>`` (the folder relative to the reports folder) in the
publishing transaction.

A run killed part-way (SIGKILL, power loss) cannot clean up after itself, and
its staging folder may hold unmasked lists. Each staging folder therefore
names its run (``RUN``: host and process id); every run starts by marking the
rows of runs that are no longer alive ``not published (run interrupted)`` and
deleting their folders, and by marking rows that name staged files already gone.
Before it moves anything, publishing writes a journal
(``_staging/<run folder>.publishing.json``: what moves where, and when) that it
deletes after the commit. A run killed in between leaves it, and the next run
first *rolls it forward*: it makes the moves not yet made and writes the
export_log changes the killed run would have committed, so lists that were
published are never marked ``not published``.

The kernel is given the run's settings in its environment
(:meth:`~crm_ml.config.Settings.as_environment`), so a notebook's
``Settings.from_env()`` reads the store and registry of the run, whatever its
working folder or the shell's variables would say.

Secrets never travel as parameters: papermill writes every parameter into the
output notebook. Notebooks read them from the environment inside crm_ml calls.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_ml.config import Settings
from crm_ml.errors import CrmMlError, NotFoundError, StoreError
from crm_ml.outputs import PRIVATE_FILE, PRIVATE_FOLDER, REPLACED_DIR, archive_name
from crm_ml.processes import process_gone, this_process
from crm_ml.report_parameters import (
    STAGING_DIR,
    check_parameters,
    coerce_parameters,
    notebook_parameters,
)
from crm_ml.report_trace import report_environment, training_runs

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from crm_ml.store.connection import Store

log = logging.getLogger(__name__)


class ReportFailedError(CrmMlError, RuntimeError):
    """A report notebook raised an error; nothing was published."""


@dataclass(frozen=True)
class PublishedReport:
    """Where a successful report run was published."""

    name: str
    as_of: date
    notebook: Path
    html: Path
    files: tuple[Path, ...]

    def summary(self, *, every_file: bool = False) -> str:
        """Describe the published report: its page and notebook, and how many files per folder.

        ``every_file`` lists the files themselves: a nightly list report writes
        a hundred, which would add as many lines to a cron log every night.
        """
        lines = [f"Report {self.name} as of {self.as_of:%Y-%m-%d} published:"]
        lines += [f"  {self.html}", f"  {self.notebook}"]
        if every_file:
            lines += [f"  {path}" for path in self.files]
        else:
            counts = sorted(Counter(path.parent for path in self.files).items())
            lines += [f"  {folder}/: {n:,} file{'' if n == 1 else 's'}" for folder, n in counts]
        return "\n".join(lines)


def notebook_path(settings: Settings, name: str) -> Path:
    """Return ``notebooks/<name>.ipynb``, or raise listing the reports that exist."""
    path = settings.root / "notebooks" / f"{name}.ipynb"
    if not path.exists():
        available = sorted(p.stem for p in (settings.root / "notebooks").glob("*.ipynb"))
        raise NotFoundError(
            f"No report notebook {path}. Available: {', '.join(available) or 'none'}."
        )
    return path


#: Parameters that say whom a report is about; their value is part of its file names.
SUBJECT_PARAMETERS = ("customer_id",)


def published_name(name: str, parameters: Mapping[str, object]) -> str:
    """Return the name a report is published under: ``name``, plus whom it is about.

    ``customer_360`` for customer ``C00013767`` is ``customer_360-C00013767``, so
    two customers' reports of one date do not replace each other; a report with
    no :data:`SUBJECT_PARAMETERS` (or none set) keeps its name. ``parameters``
    are the run's, defaults included.
    """
    from crm_ml.tags.files import safe_file_part

    subjects = [
        safe_file_part(str(parameters[key]))
        for key in SUBJECT_PARAMETERS
        if parameters.get(key) not in (None, "")
    ]
    return "-".join([name, *subjects])


def run_report(
    settings: Settings,
    name: str,
    *,
    as_of: date | datetime,
    parameters: dict[str, Any] | None = None,
    kernel_name: str = "python3",
    timeout_s: int = 1800,
) -> PublishedReport:
    """Execute ``notebooks/<name>.ipynb`` and publish it to ``reports/<as_of>/``.

    Raises
    ------
    ReportFailedError
        If a cell failed, or the run failed outside one (the kernel died, the
        notebook or its page could not be saved); the failed notebook is kept
        under ``reports/_failed/`` and its staged lists are marked not published.
    """
    import papermill as pm

    from crm_ml.report_kernel import kernel_options

    source = notebook_path(settings, name)
    check_parameters(parameters or {})
    declared = notebook_parameters(source)
    given = coerce_parameters(name, declared, parameters or {})
    params = {"as_of": f"{as_of:%Y-%m-%d}", **given}
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    report = published_name(name, {**declared, **given})
    _refuse_purged_date(settings, report, day)
    private = report != name  # about one person: their data, however masked
    _clear_interrupted(settings)
    staging = settings.reports_dir / STAGING_DIR / f"{day:%Y-%m-%d}-{report}-{uuid.uuid4().hex[:8]}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir(mode=PRIVATE_FOLDER if private else 0o777)
    outputs = staging / report
    outputs.mkdir()
    _claim(staging)
    executed = staging / f"{report}.ipynb"
    step = "running the notebook"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="crm-ml-kernel-") as sockets,
            _environment(_kernel_environment(settings, staging, report, day, private=private)),
        ):
            pm.execute_notebook(
                str(source),
                str(executed),
                parameters={**params, "output_dir": str(outputs)},
                kernel_name=kernel_name,
                cwd=str(source.parent),
                progress_bar=False,
                execution_timeout=timeout_s,
                **kernel_options(Path(sockets)),
            )
        step = "rendering its HTML page"
        _write_html(executed, staging / f"{report}.html", title=f"{report} · {day:%Y-%m-%d}")
    except pm.PapermillExecutionError as exc:
        _attach_to_training_runs(settings, staging, report)
        failed = _keep_failed(settings, executed, report, day, private=private)
        discarded = _discard(settings, staging, outputs, failed)
        raise ReportFailedError(
            f"Report {report} as of {day:%Y-%m-%d} failed in cell {exc.exec_count}: "
            f"{exc.ename}: {str(exc.evalue).rstrip('.')}. {_earlier(settings, report, day)}; "
            f"the failed notebook is {failed}.{discarded}"
        ) from exc
    except Exception as exc:
        # Outside any cell: the kernel died, or saving the notebook or the page failed
        # (a full disk). The run is discarded as a failed cell's is.
        _attach_to_training_runs(settings, staging, report)
        failed = _keep_failed(settings, executed, report, day, private=private)
        kept = f"the notebook as far as it ran is {failed}" if failed.exists() else "no notebook"
        discarded = _discard(settings, staging, outputs, failed)
        raise ReportFailedError(
            f"Report {report} as of {day:%Y-%m-%d} failed while {step}: "
            f"{type(exc).__name__}: {str(exc).rstrip('.')}. {_earlier(settings, report, day)}; "
            f"{kept} was saved.{discarded}"
        ) from exc
    _attach_to_training_runs(settings, staging, report)
    if private:
        _owner_only(staging, report)
    published = settings.reports_dir / f"{day:%Y-%m-%d}"
    try:
        _publish_logged(settings, staging, published, report)
    except StoreError as exc:
        if (staging / report).exists():
            raise ReportFailedError(
                f"Report {report} as of {day:%Y-%m-%d} ran but was not published: its exports "
                f"could not be moved in export_log ({exc}). {_earlier(settings, report, day)}; "
                f"this run's notebook and lists stay in {staging}, where export_log names "
                "them. Run the report again."
            ) from exc
        # The files moved and the commit failed: the journal lets the next run log them.
        raise ReportFailedError(
            f"Report {report} as of {day:%Y-%m-%d} was published to {published}, but "
            f"export_log could not record it ({exc}). The next report run records it from "
            "the journal it left in reports/_staging; run one once the store is reachable."
        ) from exc
    published_files = tuple(sorted(p for p in (published / report).rglob("*") if p.is_file()))
    return PublishedReport(
        name=name,
        as_of=day,
        notebook=published / f"{report}.ipynb",
        html=published / f"{report}.html",
        files=published_files,
    )


def _kernel_environment(
    settings: Settings, staging: Path, report: str, day: date, *, private: bool
) -> dict[str, str]:
    """Return the kernel's environment: the run's settings, and where to note training runs.

    A report about one person is not traced: its notebook would be copied to MLflow.
    """
    traced = {} if private else report_environment(staging, report, day)
    return {**settings.as_environment(), **traced}


def _attach_to_training_runs(settings: Settings, staging: Path, report: str) -> None:
    """Attach the executed notebook and page to the MLflow training runs the kernel started.

    The report's outcome does not depend on it: when MLflow cannot take them,
    a warning says so and the report is published (or failed) as it would be.
    """
    runs = training_runs(staging)
    if not runs:
        return
    from crm_ml.models.tracking import attach_report

    pages = [staging / f"{report}{suffix}" for suffix in PAGE_SUFFIXES]
    try:
        attach_report(runs, pages, settings)
    except Exception as exc:  # the notebook stays in reports/ either way
        log.warning(
            "Could not attach report %s's notebook to its MLflow training run(s) %s: %s",
            report,
            ", ".join(runs),
            exc,
        )


def _refuse_purged_date(settings: Settings, report: str, day: date) -> None:
    """Refuse a report dated before a retention purge's date: it would make its lists again."""
    from crm_ml.store.purges import refuse_purged_date

    store = _log_store(settings)
    if store is None:
        return
    try:
        with store.connect() as conn:
            midnight = datetime(day.year, day.month, day.day)
            refuse_purged_date(conn, midnight, what=f"report {report}")
    finally:
        store.dispose()


def _earlier(settings: Settings, report: str, day: date) -> str:
    """Say what became of the report published earlier for ``day``, if there was one."""
    if (settings.reports_dir / f"{day:%Y-%m-%d}" / f"{report}.html").exists():
        return "The last good report was kept"
    return "No report of that date was published before, and none is now"


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process's environment for the block (the kernel inherits it)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _owner_only(staging: Path, report: str) -> None:
    """Make a finished run's files its owner's only, before they leave the private staging folder.

    Publishing moves the pages and the outputs folder into the shared ``reports/<date>/``
    with the modes they have here.
    """
    for page in (staging / f"{report}{suffix}" for suffix in PAGE_SUFFIXES):
        page.chmod(PRIVATE_FILE)
    outputs = staging / report
    for path in outputs.rglob("*"):
        path.chmod(PRIVATE_FOLDER if path.is_dir() else PRIVATE_FILE)
    outputs.chmod(PRIVATE_FOLDER)


def _keep_failed(
    settings: Settings, executed: Path, name: str, day: date, *, private: bool = False
) -> Path:
    failed_dir = settings.reports_dir / "_failed"
    failed_dir.mkdir(parents=True, exist_ok=True)
    target = failed_dir / f"{day:%Y-%m-%d}-{name}-{uuid.uuid4().hex[:8]}.ipynb"
    if executed.exists():
        if private:
            executed.chmod(PRIVATE_FILE)
        shutil.move(executed, target)
    return target


def _write_html(notebook: Path, html: Path, title: str | None = None) -> None:
    """Render a static page without code cells: figures and tables read well offline.

    ``title`` names the browser tab (nbconvert's default is "Notebook").
    """
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True)
    exporter.exclude_output_prompt = True
    # nbconvert warns about figures without alt text; _describe_figures gives them one.
    exporter.log.addFilter(_no_alt_text_warning)
    try:
        node = nbformat.read(notebook, as_version=4)
        if title:
            node.metadata["title"] = title
        body, _ = exporter.from_notebook_node(node)
    finally:
        exporter.log.removeFilter(_no_alt_text_warning)
    html.write_text(_describe_figures(body), encoding="utf-8")


def _no_alt_text_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Alternative text is missing")


def _describe_figures(body: str) -> str:
    """Give every figure its section's heading and first paragraph as alt text.

    Screen readers, and anyone whose mail client blocks images, then know what
    each chart shows. nbconvert leaves a placeholder where a notebook has none.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, features="html.parser")
    for image in soup.select(".jp-RenderedImage img"):
        if image.get("alt") not in (None, _NBCONVERT_PLACEHOLDER):
            continue
        heading = image.find_previous(["h1", "h2", "h3"])
        if heading is None:
            image["alt"] = "Figure"
            continue
        title = _plain(heading.get_text()).rstrip("¶").strip()
        intro = heading.find_next_sibling("p")
        about = f". {_plain(intro.get_text())}" if intro else ""
        image["alt"] = f"Figure: {title}{about}"
    return str(soup)


_NBCONVERT_PLACEHOLDER = "No description has been provided for this image"


def _plain(text: str) -> str:
    return " ".join(text.split())


def _log_store(settings: Settings) -> Store | None:
    """Return the settings' store, or None when its file does not exist."""
    from crm_ml.store.connection import Store, store_file

    path = store_file(settings.database_url)
    if path is not None and not path.exists():
        return None  # nothing can have been logged; opening it would create an empty store
    return Store(settings.database_url)


def _export_log_store(settings: Settings, *folders: Path) -> Store | None:
    """Return the store exports of files under ``folders`` were logged in; None if none can be."""
    if not any(p.is_file() for folder in folders for p in folder.rglob("*")):
        return None  # every export writes a file before it is logged
    return _log_store(settings)


#: A staging folder's owner: :func:`~crm_ml.processes.this_process` of the run writing it.
OWNER_FILE = "RUN"
#: A staging folder with no owner this old is left over (a publish killed between two moves).
ORPHAN_AGE_S = 24 * 3600
#: A publish journal, ``_staging/<staging folder>.publishing.json``: see :func:`_write_journal`.
JOURNAL_SUFFIX = ".publishing.json"
#: A journal this old belongs to no live run, whatever its pid says: a publish (a few
#: renames and a commit) takes seconds, and a pid may have been reused since a reboot.
JOURNAL_AGE_S = 3600
#: What a run publishes beside its lists folder, in this order: the page people open goes last.
PAGE_SUFFIXES = (".ipynb", ".html")


def _claim(staging: Path) -> None:
    """Record which run owns ``staging``, so a later run can tell a dead run from a live one."""
    (staging / OWNER_FILE).write_text(json.dumps(this_process()), encoding="utf-8")


def _is_dead(staging: Path) -> bool:
    """Whether the run that wrote ``staging`` is gone (when that cannot be known, it is not)."""
    owner_file = staging / OWNER_FILE
    try:
        owner = json.loads(owner_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        try:
            return time.time() - staging.stat().st_mtime > ORPHAN_AGE_S
        except OSError:
            return False
    return process_gone(owner)


@dataclass(frozen=True)
class _PublishPlan:
    """What publishing a run moves where, and when (``at``, naive UTC) it replaces what."""

    staging: Path
    target_dir: Path
    name: str
    archive: Path | None
    at: datetime

    @property
    def staged(self) -> Path:
        """The run's lists folder before publishing."""
        return self.staging / self.name

    @property
    def lists(self) -> Path:
        """The published lists folder."""
        return self.target_dir / self.name


@dataclass(frozen=True)
class _Journal:
    """A publish journal read back: the plan, how many exports it relocated, and its run."""

    path: Path
    plan: _PublishPlan
    exports: int
    owner: dict[str, Any]


def _plan_publish(staging: Path, target_dir: Path, name: str) -> _PublishPlan:
    """Plan publishing ``staging`` to ``target_dir``: an earlier run's files are archived."""
    from crm_ml.store.admin import utc_now

    at = utc_now().replace(microsecond=0)
    lists = target_dir / name
    archive = _archive_folder(target_dir, at) / name if _holds_files(lists) else None
    return _PublishPlan(staging, target_dir, name, archive, at)


def _journal_path(staging: Path) -> Path:
    return staging.with_name(staging.name + JOURNAL_SUFFIX)


def _write_journal(plan: _PublishPlan, *, exports: int) -> Path:
    """Write, durably and whole, what the next run needs to finish ``plan`` if this one is killed.

    ``exports`` is how many export_log rows the publishing transaction relocates:
    the next run tells from it whether that transaction committed before the kill.
    """
    from crm_ml.outputs import staged_file

    record = {
        "report": plan.name,
        "staging": str(plan.staging),
        "target": str(plan.target_dir),
        "archive": str(plan.archive) if plan.archive else None,
        "at": plan.at.isoformat(),
        "exports": exports,
        "owner": this_process(),
    }
    path = _journal_path(plan.staging)
    with staged_file(path, what="publish journal") as temp:
        temp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    _fsync_folder(path.parent)  # the journal's name must reach the disk before the renames
    return path


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _read_journal(path: Path) -> _Journal:
    """Read a publish journal; raise ValueError (or OSError) if it cannot be."""
    record = json.loads(path.read_text(encoding="utf-8"))
    try:
        plan = _PublishPlan(
            staging=Path(record["staging"]),
            target_dir=Path(record["target"]),
            name=str(record["report"]),
            archive=Path(record["archive"]) if record["archive"] else None,
            at=datetime.fromisoformat(record["at"]),
        )
        return _Journal(path, plan, int(record["exports"]), dict(record["owner"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"missing or malformed field {exc}") from exc


def _journal_is_dead(journal: _Journal) -> bool:
    """Whether the run that wrote ``journal`` is gone, so that finishing its publish is safe."""
    try:
        age = time.time() - journal.path.stat().st_mtime
    except OSError:
        return False  # already finished by another run
    return age > JOURNAL_AGE_S or process_gone(journal.owner)


def _moves_begun(plan: _PublishPlan) -> bool:
    """Whether a killed publish had moved files: the run's lists, or the earlier run's to archive.

    If not, the earlier report is still whole in place and the run simply did not publish.
    """
    return not plan.staged.exists() or (plan.archive is not None and plan.archive.exists())


def _finish_moves(plan: _PublishPlan) -> None:
    """Make the moves of :func:`_publish` a kill cut off: the ones already made are skipped."""
    if plan.staged.exists() and not plan.lists.exists():
        plan.target_dir.mkdir(parents=True, exist_ok=True)
        plan.staged.rename(plan.lists)
    for suffix in PAGE_SUFFIXES:
        page = plan.staging / f"{plan.name}{suffix}"
        if page.exists():
            page.replace(plan.target_dir / page.name)


def _log_publish(conn: Connection, reports_dir: Path, plan: _PublishPlan) -> tuple[int, int]:
    """Point export_log at the files ``plan`` publishes, marking the ones it replaces.

    Called by the publishing transaction, and by the next run for a publish a
    kill cut off before its commit, so that both write the same rows.

    Returns
    -------
    tuple of int
        How many of the run's exports now name their published file, and how many
        of an earlier run's were marked replaced.
    """
    from crm_ml.segments.export_log import mark_replaced, relocate_exports

    # Before relocating, or this run's rows would be marked too. The archive is
    # named relative to the reports folder, as ``status`` holds 200 characters.
    shown = plan.archive.relative_to(reports_dir) if plan.archive else None
    earlier = mark_replaced(conn, plan.lists, plan.at, archived_in=shown)
    moved = relocate_exports(conn, plan.staged, plan.lists)
    return moved, earlier


def _roll_forward_rows(conn: Connection, reports_dir: Path, journal: _Journal) -> None:
    """Write the export_log changes of a publish killed after its journal, unless committed."""
    from crm_ml.segments.export_log import logged_under

    plan = journal.plan
    if journal.exports and not logged_under(conn, plan.staged):
        # Its transaction committed before the kill: the rows now under the target are
        # the run's own and must not be marked replaced.
        log.warning("Finished publishing %s (export_log was already up to date)", plan.lists)
        return
    moved, earlier = _log_publish(conn, reports_dir, plan)
    log.warning(
        "Finished publishing %s, interrupted by the end of its run: %d export(s) now name it, "
        "%d earlier marked replaced (files kept in %s)",
        plan.lists,
        moved,
        earlier,
        plan.archive,
    )


class _UnfinishedPublishError(Exception):
    """A publish journal that cannot be read or finished: housekeeping must wait for it."""

    def __init__(self, journal: Path, why: str) -> None:
        super().__init__(f"{journal}: {why}")


def _interrupted_publishes(root: Path) -> list[_Journal]:
    """Return the journals of dead runs' publishes under ``root``; raise if one cannot be read."""
    journals = []
    for path in sorted(root.glob(f"*{JOURNAL_SUFFIX}")) if root.is_dir() else []:
        try:
            journal = _read_journal(path)
        except (OSError, ValueError) as exc:
            if not path.exists():
                continue  # another run finished it meanwhile
            raise _UnfinishedPublishError(path, f"it cannot be read ({exc})") from exc
        if _journal_is_dead(journal):
            journals.append(journal)
    return journals


def _finish_file_moves(journals: list[_Journal]) -> list[_Journal]:
    """Finish the moves of the publishes that had begun; return those journals."""
    begun = [journal for journal in journals if _moves_begun(journal.plan)]
    for journal in begun:
        try:
            _finish_moves(journal.plan)
        except OSError as exc:
            raise _UnfinishedPublishError(
                journal.path, f"its files cannot be moved ({exc})"
            ) from exc
    return begun


def _clear_interrupted(settings: Settings) -> None:
    """Clean up after killed runs: finish their publishes, mark their exports, delete their folders.

    A run killed while publishing (after writing its journal, before deleting
    it) is rolled forward: its files are moved into place and export_log says
    so, as if it had not been killed. A run that had not begun moving files did
    not publish. Rows of a dead run's folder, and rows naming staged files that
    are gone, are marked ``not published (run interrupted)``; the folders of
    live runs are left alone. This is housekeeping, so a store that cannot be
    opened only logs a warning (and the dead folders stay, since rows still name
    them); so does a journal that cannot be finished, and then nothing is cleared:
    marking rows first would mislabel lists that were published.
    """
    from crm_ml.segments.export_log import mark_unpublished

    root = settings.reports_dir / STAGING_DIR
    try:
        journals = _interrupted_publishes(root)
        begun = _finish_file_moves(journals)
    except _UnfinishedPublishError as exc:
        log.warning(
            "A report run was killed while publishing and its publish cannot be finished: %s. "
            "Interrupted runs are not cleared until it can (move the journal away to give up).",
            exc,
        )
        return
    dead = [f for f in root.iterdir() if f.is_dir() and _is_dead(f)] if root.is_dir() else []
    # A dead publish's staging folder is dead too, even if its owner file was already deleted.
    dead += [j.plan.staging for j in journals if j.plan.staging.is_dir()]
    dead = sorted(set(dead))
    store = _log_store(settings)
    marked = 0
    if store is not None:
        try:
            with store.begin() as conn:
                for journal in begun:  # first: its rows name staged files already moved
                    _roll_forward_rows(conn, settings.reports_dir, journal)
                for folder in dead:
                    marked += mark_unpublished(conn, folder, "run interrupted")
                marked += mark_unpublished(conn, root, "run interrupted", missing_only=True)
        except StoreError as exc:
            log.warning("export_log: could not mark the exports of interrupted runs (%s)", exc)
            return
        finally:
            store.dispose()
    for folder in dead:
        shutil.rmtree(folder, ignore_errors=True)
    for journal in journals:  # last: until here, the next run could still finish the work
        journal.path.unlink(missing_ok=True)
    if dead or marked:
        log.warning(
            "Cleared %d staging folder(s) of interrupted report runs; %d export(s) marked "
            "'not published' in export_log",
            len(dead),
            marked,
        )


def _publish_logged(settings: Settings, staging: Path, target_dir: Path, name: str) -> None:
    """Publish and point export_log at the published files; the log commits only after the move.

    The rows of an earlier run whose files this one replaces, and archives, are
    marked in the same transaction. A journal written before the first move and
    deleted after the commit lets the next run finish the publish if this one
    is killed in between (see :func:`_clear_interrupted`); it is kept on any
    error, for the same reason.
    """
    plan = _plan_publish(staging, target_dir, name)
    store = _export_log_store(settings, plan.staged, plan.lists)
    if store is None:
        journal = _write_journal(plan, exports=0)
        _publish(staging, target_dir, name, plan.archive)
        journal.unlink()
        return
    try:
        with store.begin() as conn:
            moved, earlier = _log_publish(conn, settings.reports_dir, plan)
            journal = _write_journal(plan, exports=moved)
            _publish(staging, target_dir, name, plan.archive)
    finally:
        store.dispose()
    journal.unlink()
    log.info(
        "export_log: %d export(s) now name %s (%d earlier marked replaced, files kept in %s)",
        moved,
        plan.lists,
        earlier,
        plan.archive,
    )


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def _archive_folder(target_dir: Path, at: datetime) -> Path:
    """Return a new folder under ``<date>/_replaced/`` named after ``at`` (naive UTC)."""
    folder = target_dir / REPLACED_DIR / archive_name(at)
    while folder.exists():  # two re-runs published within one second
        folder = folder.with_name(f"{archive_name(at)}-{uuid.uuid4().hex[:4]}")
    return folder


def _discard(settings: Settings, staging: Path, outputs: Path, failed: Path) -> str:
    """Delete a failed run's staging folder, marking its logged exports as not published.

    Returns a sentence for the error message.
    """
    from crm_ml.segments.export_log import mark_unpublished

    store = _export_log_store(settings, outputs)
    marked = 0
    if store is not None:
        try:
            with store.begin() as conn:
                marked = mark_unpublished(conn, outputs, f"report failed, see {failed}")
        except StoreError as exc:
            # The rows keep naming the staged files, so the files must stay.
            return (
                f" Its exports could not be marked in export_log ({exc}); their files stay "
                f"in {outputs}, where export_log names them."
            )
        finally:
            store.dispose()
    shutil.rmtree(staging, ignore_errors=True)
    if not marked:
        return ""
    return f" The {marked} export(s) it logged are marked 'not published' in export_log."


def _publish(staging: Path, target_dir: Path, name: str, archive: Path | None) -> None:
    """Move a finished run into place; an earlier run's files of the same report go to ``archive``.

    ``archive`` is None when the earlier folder holds no file: it is then removed.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    old_files = target_dir / name
    if archive is not None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        old_files.rename(archive)
    elif old_files.exists():
        shutil.rmtree(old_files)
    try:
        (staging / name).rename(old_files)
    except OSError:
        if archive is not None:  # put the earlier files back: the transaction is rolled back too
            archive.rename(old_files)
        raise
    # The HTML is the page people open: it goes last, so it never points at missing files.
    for suffix in PAGE_SUFFIXES:
        (staging / f"{name}{suffix}").replace(target_dir / f"{name}{suffix}")
    shutil.rmtree(staging, ignore_errors=True)


def list_reports(settings: Settings) -> list[tuple[str, str, Path]]:
    """Return ``(as_of, name, html_path)`` for every published report, newest first."""
    found = []
    for html in settings.reports_dir.glob("*/*.html"):
        if html.parent.name.startswith("_"):
            continue
        found.append((html.parent.name, html.stem, html))
    return sorted(found, key=lambda row: (row[0], row[1]), reverse=True)
