"""``crm-ml`` commands over the store: init, upgrade, info, import, customers, tiers, export."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from crm_ml import __version__
from crm_ml.cli._common import _add_commands, _as_of, _interactive, _open_store, _store_file
from crm_ml.cli.privacy import _add_customers_erase
from crm_ml.config import Settings
from crm_ml.errors import ValidationError

if TYPE_CHECKING:
    from crm_ml.store.loading import LoadResult


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    """Create the store's tables."""
    from crm_ml.store import init_store

    store = _open_store(settings, create=True)
    version = init_store(store)
    print(f"Store ready at {store!r} (schema version {version}).")
    return 0


def cmd_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Bring a store made by an earlier crm_ml up to this release's schema."""
    from crm_ml.store import upgrade_store

    store = _open_store(settings, check=False)
    before, after = upgrade_store(store)
    if before == after:
        print(f"Store at {store!r} is up to date (schema version {after}).")
    else:
        print(f"Upgraded the store at {store!r} from schema version {before} to {after}.")
    return 0


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    """Show the settings in use and what the store holds."""
    from crm_ml.store import Store, table_counts

    _store_file(settings.database_url)  # an unreadable URL fails before anything is printed
    # The settings come first, so that a store that is missing shows the URL it was looked for at.
    print(f"crm_ml {__version__}")
    print(f"  project root : {settings.root}")
    print(f"  store        : {Store(settings.database_url)!r}")
    print(f"  MLflow       : {settings.mlflow_tracking_uri}")
    print(f"  reports      : {settings.reports_dir}")
    print(f"  time zone    : {settings.timezone}   currency: {settings.currency}")
    counts = table_counts(_open_store(settings))
    print("\nRows per table:")
    print(counts[counts["rows"] > 0].to_string() if counts["rows"].any() else "  (empty)")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Import a CSV or Parquet file, or an exported table folder, into a store table (or CDNOW).

    The import's warnings are logged as it runs (``WARNING crm_ml.store.loading: FILE: …``,
    dated in a log file), so the summary printed after it leaves them out.
    """
    _check_import_table(args.table)
    store = _open_store(settings)
    if args.table == "cdnow":
        from crm_ml.store.cdnow import import_cdnow

        cdnow = import_cdnow(store, Path(args.file), progress=_interactive())
        print(replace(cdnow, loads=tuple(map(_unwarned, cdnow.loads))).summary())
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
        progress=_interactive(),
    )
    print(_unwarned(result).summary())
    return 0


def _unwarned(result: LoadResult) -> LoadResult:
    """Return ``result`` without the warnings the import has logged already.

    The log's copy is the one kept: it is dated in a log file, says ``WARNING``
    for a grep, and is written to stderr as the import runs, in order with the
    other log lines (stdout to a file is buffered until the command ends).
    """
    return replace(result, warnings=())


def _check_import_table(table: str) -> None:
    """Refuse an unknown TABLE before touching the store, suggesting the nearest name."""
    import difflib

    from crm_ml.store.validation import IMPORT_TABLES

    choices = (*IMPORT_TABLES, "cdnow")
    if table in choices:
        return
    close = difflib.get_close_matches(table, choices, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValidationError(
        f"Cannot import into table {table!r}.{hint} Expected one of {', '.join(choices)} "
        "('cdnow' loads CDNOW_master.txt or CDNOW_sample.txt into customers and orders)."
    )


def cmd_customers_merge(args: argparse.Namespace, settings: Settings) -> int:
    """Merge customers who share a verified phone or member card."""
    from crm_ml.store.admin import utc_now
    from crm_ml.store.identity import merge_customers, plan_merges

    store = _open_store(settings)
    plan = plan_merges(store)
    result = merge_customers(store, plan, at=utc_now(), actor=args.actor, dry_run=args.dry_run)
    print(result.summary())
    return 0


def cmd_tiers_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Record tier moves at ``--as-of`` from rolling 12-month net spend.

    A date outside the store's data is refused by ``apply_tier_changes`` itself,
    before anything is written, so notebook callers get the same check.
    """
    from crm_ml.store.tiers import TierPolicy, apply_tier_changes

    store = _open_store(settings)
    policy = TierPolicy.from_store(store, review_days=args.review_days)
    moves = apply_tier_changes(
        store, args.as_of, policy=policy, members_only=not args.all_customers
    )
    names = {t.tier_id: t.label or t.name for t in policy.tiers}
    print(f"Tier changes recorded at {args.as_of:%Y-%m-%d}: {len(moves):,}")
    if not moves.empty:
        counts = moves.assign(to_tier=moves["to_tier"].map(names)).value_counts(
            ["direction", "to_tier"], sort=False
        )
        print(counts.rename("customers").to_string())
    return 0


def cmd_export_parquet(args: argparse.Namespace, settings: Settings) -> int:
    """Export the store's tables that features read to partitioned Parquet (for Spark).

    The export holds unmasked personal data: ``export_parquet`` keeps it private
    (0600 files), records who ran it and ``--reason`` in its manifest, and warns.
    """
    from crm_ml.store.export import export_parquet

    summary = export_parquet(
        _open_store(settings),
        Path(args.dir),
        reason=args.reason,  # the login name is recorded as who exported
        progress=_interactive(),
    )
    print(summary.to_string())
    return 0


# --------------------------------------------------------------------------- parser

#: Spellings of the encodings a source file may declare, by the one the readers take.
#: GBK and GB2312 files are read as GB18030, their superset, so all three are one.
ENCODING_NAMES = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "gbk": "gbk",
    "gb18030": "gbk",
    "gb2312": "gbk",
    "cp936": "gbk",
}


def encoding_name(text: str) -> str:
    """Read ``--encoding`` in any case (``GBK``, ``gb18030``, ``UTF8``) as ``utf-8`` or ``gbk``."""
    name = ENCODING_NAMES.get(text.strip().lower().replace("_", "-"))
    if name is None:
        raise argparse.ArgumentTypeError(
            f"unsupported encoding {text!r}: expected utf-8, gbk, gb18030 or gb2312 (any case). "
            'For another encoding, or Excel\'s "Unicode 文本", save the file from Excel as '
            '"CSV UTF-8 (逗号分隔)".'
        )
    return name


def add_encoding_option(parser: argparse.ArgumentParser, default: str) -> None:
    """Add ``--encoding`` to a command that reads a CSV file; ``default`` says what it does."""
    parser.add_argument(
        "--encoding",
        type=encoding_name,
        metavar="{utf-8,gbk,gb18030,gb2312}",
        help=f"file encoding, any case; gbk and gb2312 are read as gb18030 (default: {default})",
    )


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the store")
    esub = _add_commands(p, "export_command")
    pq = esub.add_parser(
        "parquet",
        help="write the tables features read to DIR/<table>/ as Parquet, event tables by year",
        description="Write the store's tables to DIR/<table>/ as Parquet, event tables by year, "
        "and DIR/_manifest.json last. The export holds every customer's unmasked personal data "
        "(names, phones, emails, birth dates, consent): its files are readable by their owner "
        "only (mode 600, folders 700), the manifest records who ran it (login name) and "
        "--reason, and a warning is printed.",
    )
    pq.add_argument("dir", help="output folder")
    pq.add_argument(
        "--reason", help="why the store is exported, kept in DIR/_manifest.json (recommended)"
    )
    pq.set_defaults(func=cmd_export_parquet)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="load a CSV/Parquet file or exported table folder into a table, or CDNOW",
        description="Validate and load FILE into TABLE in one transaction. FILE may be a "
        "table folder written by `crm-ml export parquet` (e.g. DIR/orders): all its part "
        "files load together, or none. Rejected rows are written to a reject report (file, "
        "line, column, rule, value). Loading the same file twice changes nothing. To move a "
        "store, import customer first, then the tables that refer to it, including "
        "customer_merge (the merge log), customer_change (profile history) and, last, "
        "erased_customer (erasure marks). Rows that would put back an erased customer's "
        "profile, identities, custom fields or consent are skipped with a warning. TABLE "
        "'cdnow' loads CDNOW_master.txt or CDNOW_sample.txt. The columns each table's "
        "file must have, their allowed values and the load order are in docs/import.md.",
    )
    p.add_argument("table", help="store table (e.g. customer, orders, points_ledger) or 'cdnow'")
    p.add_argument("file", help="CSV or Parquet file, or a folder of Parquet part files")
    p.add_argument(
        "--timezone",
        help="zone of timestamps without one (default: settings); Parquet timestamps that "
        "carry a zone, as the export writes, ignore it",
    )
    add_encoding_option(p, "UTF-8")
    p.add_argument("--as-of", type=_as_of, help="reject rows dated after this moment")
    p.add_argument(
        "--max-reject-rate",
        type=float,
        default=0.0,
        help="share of rows that may be rejected before the whole load fails (default 0)",
    )
    p.add_argument("--reject-dir", help="where to write the reject report")
    p.set_defaults(func=cmd_import)


def _add_tiers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiers", help="loyalty tiers")
    tsub = _add_commands(p, "tiers_command")
    a = tsub.add_parser(
        "apply",
        help="record tier moves at a date from rolling 12-month net spend",
        description="Evaluate every member's tier at AS_OF from their net spend over the 12 "
        "months before it (thresholds from the tier table) and record each move in "
        "tier_change. Run it on the same date twice and nothing changes; dates must not go "
        "back before the latest recorded change, nor lie before the store's data or so far "
        "after its last order (over 12 months) that no spend counts.",
    )
    a.add_argument("--as-of", type=_as_of, required=True, help="evaluation date, e.g. 2025-07-01")
    a.add_argument(
        "--review-days",
        type=int,
        help="tier protection (保级): downgrade only once the last change is this many days "
        "old, one tier at a time (e.g. 365); upgrades happen at once",
    )
    a.add_argument(
        "--all-customers",
        action="store_true",
        help="every active customer, not only loyalty members",
    )
    a.set_defaults(func=cmd_tiers_apply)


def _add_customers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("customers", help="customer identity tools: merge, erase")
    csub = _add_commands(p, "customers_command")
    m = csub.add_parser(
        "merge",
        help="merge customers sharing a verified phone or member card",
        description="Find customers sharing a strong identity and merge them into one surviving "
        "id, re-keying their history. Shared emails are only flagged.",
    )
    m.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
    m.add_argument("--actor", default="crm-ml", help="who is merging (recorded in the merge log)")
    m.set_defaults(func=cmd_customers_merge)
    _add_customers_erase(csub)
