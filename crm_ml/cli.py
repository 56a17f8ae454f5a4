"""The ``crm-ml`` command.

Each sub-command builds :class:`~crm_ml.config.Settings` from the environment,
opens the store, makes one call into the package and prints a short summary.
Heavy modules are imported inside the commands so that ``crm-ml --help`` is fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from crm_ml import __version__
from crm_ml.config import Settings
from crm_ml.errors import CrmMlError
from crm_ml.store import Store

log = logging.getLogger("crm_ml.cli")

Command = Callable[[argparse.Namespace, Settings], int]


def _as_of(text: str) -> datetime:
    """Parse a ``--as-of`` date (``YYYY-MM-DD`` or an ISO timestamp)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2025-06-30 or 2025-06-30T00:00:00, got {text!r}"
        ) from exc


def _open_store(settings: Settings) -> Store:
    return Store(settings.database_url)


# --------------------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    """Create the store's tables."""
    from crm_ml.store import init_store

    store = _open_store(settings)
    version = init_store(store)
    print(f"Store ready at {store!r} (schema version {version}).")
    return 0


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    """Show the settings in use and what the store holds."""
    from crm_ml.store import table_counts

    print(f"crm_ml {__version__}")
    print(f"  project root : {settings.root}")
    print(f"  store        : {_open_store(settings)!r}")
    print(f"  MLflow       : {settings.mlflow_tracking_uri}")
    print(f"  reports      : {settings.reports_dir}")
    print(f"  time zone    : {settings.timezone}   currency: {settings.currency}")
    counts = table_counts(_open_store(settings))
    print("\nRows per table:")
    print(counts[counts["rows"] > 0].to_string() if counts["rows"].any() else "  (empty)")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Import a CSV or Parquet file into a store table (or CDNOW transactions)."""
    store = _open_store(settings)
    if args.table == "cdnow":
        from crm_ml.store.cdnow import import_cdnow

        print(import_cdnow(store, Path(args.file), progress=True).summary())
        return 0
    from crm_ml.store.loading import import_file

    result = import_file(
        store,
        args.table,
        Path(args.file),
        timezone=args.timezone or settings.timezone,
        encoding=args.encoding,
        as_of=args.as_of,
        max_reject_rate=args.max_reject_rate,
        reject_dir=Path(args.reject_dir) if args.reject_dir else None,
        progress=True,
    )
    print(result.summary())
    return 0


def cmd_customers_merge(args: argparse.Namespace, settings: Settings) -> int:
    """Merge customers who share a verified phone or member card."""
    from crm_ml.store.admin import utc_now
    from crm_ml.store.identity import merge_customers, plan_merges

    store = _open_store(settings)
    plan = plan_merges(store)
    result = merge_customers(store, plan, at=utc_now(), actor=args.actor, dry_run=args.dry_run)
    print(result.summary())
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Build the demo store and run the main job on the embedded default."""
    from crm_ml.pipeline import run_demo

    run_demo(settings, n_customers=args.customers, seed=args.seed, fresh=not args.keep)
    return 0


def _actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        return "crm-ml"


def cmd_tags_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the rule and model tags as of a date, keeping history."""
    from crm_ml.tags import tags_apply_command

    print(tags_apply_command(_open_store(settings), args.as_of, actor=_actor()))
    return 0


def cmd_tags_list(args: argparse.Namespace, settings: Settings) -> int:
    """List tag definitions, with member counts on a date."""
    from crm_ml.tags import tags_list_command

    print(tags_list_command(_open_store(settings), on=args.on).to_string())
    return 0


def cmd_segment_create(args: argparse.Namespace, settings: Settings) -> int:
    """Check and save a segment rule."""
    from crm_ml.segments import segment_create_command

    kind: Literal["static", "dynamic"] = "static" if args.static else "dynamic"
    store = _open_store(settings)
    print(
        segment_create_command(
            store, args.name, args.rule, actor=_actor(), label=args.label, kind=kind
        )
    )
    return 0


def cmd_segment_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show a segment; with --as-of, snapshot its members first."""
    from crm_ml.segments import segment_show_command

    print(segment_show_command(_open_store(settings), args.name, as_of=args.as_of))
    return 0


def cmd_segment_export(args: argparse.Namespace, settings: Settings) -> int:
    """Export a segment's consented, masked members, one file per owner."""
    import os

    from crm_ml.segments import segment_export_command

    out = Path(args.out) if args.out else settings.reports_dir / f"{args.as_of:%Y-%m-%d}" / "lists"
    text = segment_export_command(
        _open_store(settings),
        args.name,
        args.as_of,
        channel=args.channel,
        purpose=args.purpose,
        out_dir=out,
        secret=os.environ.get("CRM_ML_EXPORT_SECRET"),
        actor=_actor(),
        unmask=args.unmask,
    )
    print(text)
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Backtest, train, log and register a churn or propensity model."""
    from crm_ml.features import training_frame
    from crm_ml.models import train_model

    store = _open_store(settings)
    label = "churn" if args.kind == "churn" else "purchase"
    data = training_frame(
        store,
        args.snapshots,
        args.horizon_days,
        args.gap_days,
        label=label,
        category=args.category,
        progress=True,
    )
    print(data.prevalence.to_string())
    result = train_model(args.kind, data, settings, register=not args.no_register)
    print(result.backtest.metrics.to_string())
    if result.registered is not None:
        reg = result.registered
        print(f"Registered {reg.name} v{reg.version} as {reg.alias}: {reg.reason}")
    return 0


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    """Score every customer as of a date with a registered model, with reasons."""
    from crm_ml.features import customer_features
    from crm_ml.models import score_customers

    store = _open_store(settings)
    features = customer_features(store, args.as_of, progress=True)
    for model in args.model or ["crm-churn@champion", "crm-propensity@champion"]:
        summary = score_customers(
            store,
            features,
            args.as_of,
            model=model,
            settings=settings,
            language=settings.language,
            attribution=args.attribution,
        )
        print(f"{model} as of {args.as_of:%Y-%m-%d}:")
        print(summary.to_string())
    return 0


def cmd_export_parquet(args: argparse.Namespace, settings: Settings) -> int:
    """Export the store's tables that features read to partitioned Parquet (for Spark)."""
    from crm_ml.store.export import export_parquet

    summary = export_parquet(_open_store(settings), Path(args.dir), progress=True)
    print(summary.to_string())
    return 0


def cmd_features_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build the customer feature table as of a date and write it to Parquet."""
    from crm_ml.features import build_feature_file

    path = build_feature_file(_open_store(settings), args.as_of, Path(args.out), progress=True)
    print(f"Features as of {args.as_of:%Y-%m-%d} written to {path}")
    return 0


def _parse_value(text: str) -> object:
    """Read a ``-p key value`` value as JSON when it is one (numbers, lists), else as text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_report_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a report notebook and publish it to reports/<as_of>/."""
    from crm_ml.reporting import run_report

    params = {key: _parse_value(value) for key, value in args.parameter or []}
    report = run_report(settings, args.name, as_of=args.as_of, parameters=params)
    print(report.summary())
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


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the store")
    esub = p.add_subparsers(dest="export_command", required=True)
    pq = esub.add_parser(
        "parquet",
        help="write the tables features read to DIR/<table>/ as Parquet, event tables by year",
    )
    pq.add_argument("dir", help="output folder")
    pq.set_defaults(func=cmd_export_parquet)


def _add_models(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="backtest, train and register a churn or propensity model in MLflow",
        description="Stack SNAPSHOTS feature snapshots GAP_DAYS apart (the latest as late as the "
        "data allows), label each over the next HORIZON_DAYS, backtest against recency, RFM and "
        "BG/NBD baselines, and register the model. It becomes 'champion' only if its backtest "
        "AUC is not worse than the current champion's; otherwise 'challenger'.",
    )
    train.add_argument("kind", choices=["churn", "propensity"])
    train.add_argument("--snapshots", type=int, default=5, help="number of snapshots (default 5)")
    train.add_argument("--gap-days", type=int, default=90, help="days between snapshots")
    train.add_argument("--horizon-days", type=int, default=90, help="label window (default 90)")
    train.add_argument("--category", help="propensity to buy in this category only")
    train.add_argument("--no-register", action="store_true", help="backtest only")
    train.set_defaults(func=cmd_train)
    score = sub.add_parser("score", help="score every customer as of a date, with reasons")
    score.add_argument("--as-of", type=_as_of, required=True)
    score.add_argument(
        "--model",
        action="append",
        help="registered model, repeatable "
        "(default: crm-churn@champion and crm-propensity@champion)",
    )
    score.add_argument(
        "--attribution",
        choices=["shap", "path"],
        default="shap",
        help="how reasons are attributed: exact SHAP, or the path method, about "
        "twice as fast (its top reason is SHAP's for about two customers in three)",
    )
    score.set_defaults(func=cmd_score)


def _add_tags(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tags", help="auto, manual and batch tags")
    tsub = p.add_subparsers(dest="tags_command", required=True)
    apply = tsub.add_parser(
        "apply",
        help="apply rule and model tags as of a date (installs the built-in library first time)",
    )
    apply.add_argument("--as-of", type=_as_of, required=True, help="date the tags describe")
    apply.set_defaults(func=cmd_tags_apply)
    lst = tsub.add_parser("list", help="list tags, with member counts on a date")
    lst.add_argument("--on", type=_as_of, help="count members on this date")
    lst.set_defaults(func=cmd_tags_list)


def _add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="audiences defined by rules")
    ssub = p.add_subparsers(dest="segment_command", required=True)
    create = ssub.add_parser(
        "create",
        help="save a segment rule",
        description="Example: crm-ml segment create lapsing_vip "
        "\"recency_days > 60 and revenue_365d >= 2000 and tag('high_value')\"",
    )
    create.add_argument("name", help="lower-case name, e.g. lapsing_vip")
    create.add_argument("rule", help="rule over features, tags, scores and consent")
    create.add_argument("--label", help="display label, e.g. 流失风险高价值会员")
    create.add_argument("--static", action="store_true", help="freeze members at first snapshot")
    create.set_defaults(func=cmd_segment_create)
    show = ssub.add_parser("show", help="show a segment and its size over time")
    show.add_argument("name")
    show.add_argument("--as-of", type=_as_of, help="snapshot members at this date first")
    show.set_defaults(func=cmd_segment_show)
    exp = ssub.add_parser(
        "export",
        help="export consented, masked members, one CSV per account manager",
        description="Only customers whose consent for CHANNEL and PURPOSE is granted at the "
        "date are written. Personal data is masked unless --unmask (which is logged). The "
        "pseudonymous id needs CRM_ML_EXPORT_SECRET in the environment.",
    )
    exp.add_argument("name")
    exp.add_argument("--as-of", type=_as_of, required=True)
    exp.add_argument("--channel", required=True, help="sms, email, wechat, phone or app_push")
    exp.add_argument("--purpose", default="marketing", help="marketing, service or research")
    exp.add_argument("--out", help="folder (default reports/<as_of>/lists)")
    exp.add_argument("--unmask", action="store_true", help="write full names/phones (logged)")
    exp.set_defaults(func=cmd_segment_export)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="run and list papermill reports")
    rsub = p.add_subparsers(dest="report_command", required=True)
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
        help="notebook parameter (repeatable); VALUE is read as JSON when possible",
    )
    run.set_defaults(func=cmd_report_run)
    rsub.add_parser("list", help="list published reports").set_defaults(func=cmd_report_list)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="load a CSV/Parquet file into a table, or CDNOW transactions",
        description="Validate and load FILE into TABLE in one transaction. Rejected rows are "
        "written to a reject report (file, line, column, rule, value). Loading the same "
        "file twice changes nothing. TABLE 'cdnow' loads CDNOW_master.txt or CDNOW_sample.txt.",
    )
    p.add_argument("table", help="store table (e.g. customer, orders, points_ledger) or 'cdnow'")
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--timezone", help="zone of timestamps without one (default: settings)")
    p.add_argument("--encoding", choices=["utf-8", "gbk"], help="file encoding (default: UTF-8)")
    p.add_argument("--as-of", type=_as_of, help="reject rows dated after this moment")
    p.add_argument(
        "--max-reject-rate",
        type=float,
        default=0.0,
        help="share of rows that may be rejected before the whole load fails (default 0)",
    )
    p.add_argument("--reject-dir", help="where to write the reject report")
    p.set_defaults(func=cmd_import)


def _add_customers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("customers", help="customer identity tools")
    csub = p.add_subparsers(dest="customers_command", required=True)
    m = csub.add_parser(
        "merge",
        help="merge customers sharing a verified phone or member card",
        description="Find customers sharing a strong identity and merge them into one surviving "
        "id, re-keying their history. Shared emails are only flagged.",
    )
    m.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
    m.add_argument("--actor", default="crm-ml", help="who is merging (recorded in the merge log)")
    m.set_defaults(func=cmd_customers_merge)


def _add_features(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="customer features")
    fsub = p.add_subparsers(dest="features_command", required=True)
    b = fsub.add_parser("build", help="build the feature table as of a date")
    b.add_argument("--as-of", type=_as_of, required=True, help="features use rows before this")
    b.add_argument("--out", required=True, help="Parquet file to write")
    b.set_defaults(func=cmd_features_build)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``crm-ml`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="crm-ml",
        description="Customer intelligence for loyalty retailers: store, features, models, "
        "tags, segments and reports. Settings come from CRM_ML_DATABASE_URL, "
        "MLFLOW_TRACKING_URI, CRM_ML_REPORTS_DIR and CRM_ML_HOME.",
    )
    parser.add_argument("--version", action="version", version=f"crm_ml {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the store's tables").set_defaults(func=cmd_init)
    sub.add_parser("info", help="show settings and row counts").set_defaults(func=cmd_info)
    demo = sub.add_parser("demo", help="build the demo store and run the main job")
    demo.add_argument("--customers", type=int, default=20_000, help="demo size (default 20000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--keep", action="store_true", help="keep an existing store")
    demo.set_defaults(func=cmd_demo)
    _add_import(sub)
    _add_customers(sub)
    _add_features(sub)
    _add_models(sub)
    _add_tags(sub)
    _add_segment(sub)
    _add_report(sub)
    _add_export(sub)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """Keep MLflow's progress bars, telemetry and chatter out of the command's output."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not verbose:
        logging.getLogger("mlflow").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crm-ml``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries(args.verbose)
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings))
    except CrmMlError as exc:
        print(f"crm-ml: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
