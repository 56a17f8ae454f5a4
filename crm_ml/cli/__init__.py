"""The ``crm-ml`` command.

Each sub-command builds :class:`~crm_ml.config.Settings` from the environment,
opens the store, makes one call into the package and prints a short summary.
Heavy modules are imported inside the commands so that ``crm-ml --help`` is fast.

The commands live by group in :mod:`~crm_ml.cli.store`, :mod:`~crm_ml.cli.models`,
:mod:`~crm_ml.cli.audiences` and :mod:`~crm_ml.cli.reports`; this module builds
the parser and runs it.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import traceback
from collections.abc import Sequence
from datetime import datetime

from crm_ml import __version__
from crm_ml.cli._common import TIME_FORMAT, Command, _add_commands, _interactive
from crm_ml.cli.audiences import (
    _add_segment,
    _add_tags,
    cmd_segment_create,
    cmd_segment_export,
    cmd_segment_history,
    cmd_segment_show,
    cmd_tags_apply,
    cmd_tags_list,
)
from crm_ml.cli.lists import _add_lists, cmd_lists_find, cmd_lists_purge_archive
from crm_ml.cli.models import (
    _add_features,
    _add_models,
    _add_registry,
    cmd_features_build,
    cmd_models_list,
    cmd_models_promote,
    cmd_score,
    cmd_train,
)
from crm_ml.cli.privacy import _add_consent, cmd_consent_withdraw, cmd_customers_erase
from crm_ml.cli.reports import _add_report, cmd_report_list, cmd_report_run
from crm_ml.cli.retention import _add_retention
from crm_ml.cli.store import (
    _add_customers,
    _add_export,
    _add_import,
    _add_tiers,
    cmd_customers_merge,
    cmd_export_parquet,
    cmd_import,
    cmd_info,
    cmd_init,
    cmd_tiers_apply,
    cmd_upgrade,
)
from crm_ml.config import Settings
from crm_ml.errors import CrmMlError

log = logging.getLogger("crm_ml.cli")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Build the demo store and run the main job on the embedded default."""
    from crm_ml.pipeline import run_demo

    run_demo(
        settings,
        n_customers=args.customers,
        seed=args.seed,
        fresh=not args.keep,
        progress=_interactive(),
    )
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Return the ``crm-ml`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="crm-ml",
        description="Customer intelligence for loyalty retailers: store, features, models, "
        "tags, segments and reports. Settings come from CRM_ML_DATABASE_URL, "
        "MLFLOW_TRACKING_URI, CRM_ML_REPORTS_DIR and CRM_ML_HOME.",
    )
    parser.add_argument("--version", action="version", version=f"crm_ml {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log progress details; `report run` names every file it published",
    )
    sub = _add_commands(parser, "command")
    sub.add_parser("init", help="create the store's tables").set_defaults(func=cmd_init)
    sub.add_parser(
        "upgrade",
        help="upgrade a store made by an earlier crm_ml (back it up first)",
        description="Adds what this release's schema has and the store lacks, in one "
        "transaction: if a step fails, the store is left as it was.",
    ).set_defaults(func=cmd_upgrade)
    sub.add_parser("info", help="show settings and row counts").set_defaults(func=cmd_info)
    demo = sub.add_parser("demo", help="build the demo store and run the main job")
    demo.add_argument("--customers", type=int, default=20_000, help="demo size (default 20000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--keep", action="store_true", help="keep an existing store")
    demo.set_defaults(func=cmd_demo)
    _add_import(sub)
    _add_customers(sub)
    _add_consent(sub)
    _add_tiers(sub)
    _add_features(sub)
    _add_models(sub)
    _add_registry(sub)
    _add_tags(sub)
    _add_segment(sub)
    _add_lists(sub)
    _add_retention(sub)
    _add_report(sub)
    _add_export(sub)
    return parser


def _configure_logging(verbose: bool, *, dated: bool) -> None:
    """Log warnings (``verbose``: also progress) to stderr; ``dated`` lines start with the time.

    A cron log collects every night's lines, and the time (local, as the crontab's)
    says which night a line belongs to. At a terminal the time would only be noise.
    """
    line = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=f"%(asctime)s {line}" if dated else line,
        datefmt=TIME_FORMAT,
    )


def _quiet_libraries(verbose: bool) -> None:
    """Keep MLflow's progress bars, telemetry and chatter out of the command's output."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not verbose:
        # MLflow sets its loggers' level from this variable when it is first imported,
        # which happens later, inside the commands.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        logging.getLogger("mlflow").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crm-ml``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.func is None:
        args.choose_command()  # a group without its command: list the choices and exit 2
    dated = not _interactive()
    _configure_logging(args.verbose, dated=dated)
    _quiet_libraries(args.verbose)
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings))
    except CrmMlError as exc:
        said = str(exc)
    except Exception as exc:
        said = _failure(exc)
        if not said:
            raise
        if args.verbose:
            traceback.print_exc()
    when = f"{datetime.now():{TIME_FORMAT}} " if dated else ""  # as the log lines
    print(f"{when}crm-ml: error: {said}", file=sys.stderr)
    return 2


def _failure(exc: BaseException) -> str:
    """Say what failed outside crm_ml (the store's server, the disk) and what to do; "" if unknown.

    Each write is one transaction and each list file is published whole, so what
    failed was not written, and the command can simply run again.
    """
    import duckdb
    import psycopg
    from sqlalchemy.exc import OperationalError

    # The server went away or the disk failed: not a bug, so no traceback unless -v.
    lost = (psycopg.OperationalError, duckdb.IOException, duckdb.FatalException)
    store = isinstance(exc, OperationalError) or isinstance(getattr(exc, "orig", exc), lost)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not (store or full):
        return ""
    what = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    if full or "No space left on device" in what:
        return (
            f"the disk is full: {what}. What failed was not written, and files already "
            "published are unchanged. Free space and run the command again (a DuckDB store "
            "needs free space of about twice the data loaded at once)."
        )
    return (
        f"the store failed: {what}. The write that failed was rolled back; what the command "
        "had finished before it stays. Run the command again when the store is reachable "
        "(-v shows the details)."
    )


__all__ = [
    "Command",
    "build_parser",
    "cmd_consent_withdraw",
    "cmd_customers_erase",
    "cmd_customers_merge",
    "cmd_demo",
    "cmd_export_parquet",
    "cmd_features_build",
    "cmd_import",
    "cmd_info",
    "cmd_init",
    "cmd_lists_find",
    "cmd_lists_purge_archive",
    "cmd_models_list",
    "cmd_models_promote",
    "cmd_report_list",
    "cmd_report_run",
    "cmd_score",
    "cmd_segment_create",
    "cmd_segment_export",
    "cmd_segment_history",
    "cmd_segment_show",
    "cmd_tags_apply",
    "cmd_tags_list",
    "cmd_tiers_apply",
    "cmd_train",
    "cmd_upgrade",
    "main",
]
