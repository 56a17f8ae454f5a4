"""``crm-ml retention`` commands: delete what is older than the retention period."""

from __future__ import annotations

import argparse

from crm_ml.cli._common import _add_commands, _add_export_log_audit, _as_of, _open_store
from crm_ml.config import Settings


def cmd_retention_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Delete scores, snapshots, ended tag memberships and reports older than a date."""
    from crm_ml.retention import purge_before

    summary = purge_before(
        _open_store(settings),
        settings,
        before=args.before,
        actor=args.actor,
        reason=args.reason,
        dry_run=args.dry_run,
    )
    print(summary)
    return 0


# --------------------------------------------------------------------------- parser


def _add_retention(sub: argparse._SubParsersAction) -> None:
    """Add the ``retention`` group: ``retention purge``."""
    p = sub.add_parser("retention", help="apply a retention period to what crm_ml keeps")
    rsub = _add_commands(p, "retention_command")
    purge = rsub.add_parser(
        "purge",
        help="delete scores, snapshots, ended tag memberships and reports older than a date",
        description="In one transaction, delete the scores and segment snapshots as of a date "
        "before --before and the tag memberships that ended by it; then delete the report "
        "folders reports/<date>/ of an earlier date (pages, lists, _replaced archives, customer "
        "360 reports) and the failed runs in reports/_failed/, marking the lists' export_log "
        "rows 'purged at <time> UTC by <actor>' with the reason. Files are deleted only once "
        "the transaction is committed. Kept: each model's latest scoring run, each static "
        "segment's latest snapshot and the memberships ended at a rule or model tag's latest "
        "run, which crm_ml still reads. Lists written elsewhere (--out, notebooks/lists/) and "
        "MLflow runs are not reached.",
    )
    purge.add_argument(
        "--before",
        type=_as_of,
        required=True,
        help="purge data dated before this date (UTC), e.g. 2026-06-01; not after today",
    )
    _add_export_log_audit(purge, verb="purges", reason="the retention rule")
    purge.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted and change nothing"
    )
    purge.set_defaults(func=cmd_retention_purge)
