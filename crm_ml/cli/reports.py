"""``crm-ml report``: run a report notebook with papermill, and list published reports."""

from __future__ import annotations

import argparse
from datetime import datetime

from crm_ml.cli._common import TIME_FORMAT, _add_commands, _as_of, _open_store
from crm_ml.config import Settings


def cmd_report_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a report notebook and publish it to reports/<as_of>/.

    The first line says when the run started, so that each night's lines can be
    found in a cron log; it is flushed at once, or output to a file would hold
    it back until the end, after the run's log lines. Published files are
    counted per folder; ``--verbose`` names each.
    """
    from crm_ml.reporting import run_report

    started = f"{datetime.now():{TIME_FORMAT}}"
    print(
        f"{started} crm-ml report run {args.name} --as-of {args.as_of:%Y-%m-%d}: started",
        flush=True,
    )
    _open_store(settings)  # a notebook opening a missing store file would create an empty one
    params = dict(args.parameter or [])  # text: run_report converts it to each default's type
    report = run_report(settings, args.name, as_of=args.as_of, parameters=params)
    print(report.summary(every_file=args.verbose))
    return 0


def cmd_report_list(args: argparse.Namespace, settings: Settings) -> int:
    """List published reports, newest first."""
    from crm_ml.reporting import list_reports

    rows = list_reports(settings)
    if not rows:
        print(f"No reports yet in {settings.reports_dir}.")
    for as_of, name, html in rows:
        print(f"{as_of}  {name:<24} {html}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="run and list papermill reports")
    rsub = _add_commands(p, "report_command")
    run = rsub.add_parser(
        "run",
        help="execute notebooks/NAME.ipynb and publish to reports/<as_of>/",
        description="Execute a report notebook with papermill. On success publish the notebook, "
        "an offline HTML page and its lists to reports/<as_of>/; on failure keep the last good "
        "report, save the failed notebook under reports/_failed/ and exit non-zero. "
        "Secrets come from the environment, never from -p.",
    )
    run.add_argument("name", help="notebook name, e.g. retention_analysis")
    run.add_argument("--as-of", type=_as_of, required=True, help="the report's date")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="notebook parameter (repeatable); VALUE is converted to the type of the "
        "parameter's default (90, 0.6, true, 2024-10-01, a JSON list), and an unknown KEY "
        "is refused before anything runs",
    )
    run.set_defaults(func=cmd_report_run)
    rsub.add_parser("list", help="list published reports").set_defaults(func=cmd_report_list)
