"""``crm-ml lists`` commands: find or redact a person in the written lists; purge archives."""

from __future__ import annotations

import argparse

from crm_ml.cli._common import (
    _add_commands,
    _add_export_log_audit,
    _as_of,
    _interactive,
    _open_store,
)
from crm_ml.config import Settings


def cmd_lists_find(args: argparse.Namespace, settings: Settings) -> int:
    """Show which written list files hold a customer, with their export_log rows."""
    import os

    from crm_ml.segments.find import find_lists
    from crm_ml.segments.masking import SECRET_ENV

    store = _open_store(settings)
    found = find_lists(
        store,
        settings,
        args.customer_id,
        secret=os.environ.get(SECRET_ENV),
        progress=_interactive(),
    )
    print(found)
    return 0


def cmd_lists_purge_archive(args: argparse.Namespace, settings: Settings) -> int:
    """Delete archived (``_replaced``) lists made before a date; mark their export_log rows."""
    from crm_ml.segments.archive_purge import purge_archive

    store = _open_store(settings)
    print(purge_archive(store, settings, before=args.before, actor=args.actor, reason=args.reason))
    return 0


def cmd_lists_redact(args: argparse.Namespace, settings: Settings) -> int:
    """Rewrite every written list file holding a customer without them; note it in export_log."""
    import os

    from crm_ml.segments.masking import SECRET_ENV
    from crm_ml.segments.redact import redact_lists

    store = _open_store(settings)
    summary = redact_lists(
        store,
        settings,
        args.customer_id,
        secret=os.environ.get(SECRET_ENV),
        actor=args.actor,
        reason=args.reason,
        progress=_interactive(),
    )
    print(summary)
    return 0


# --------------------------------------------------------------------------- parser


def _add_lists(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lists",
        help="written contact lists: find or remove a customer in them, purge old archives",
    )
    lsub = _add_commands(p, "lists_command")
    find = lsub.add_parser(
        "find",
        help="which written list files hold a customer (published and archived)",
        description="Read every list file under the reports folder (the _replaced archives "
        "and unpublished runs included) and every file export_log names, and show those that "
        "hold the customer, with their export_log row (when, who, channel, purpose, status) "
        "and whether the file is published or archived. The customer is found by the "
        "pseudonymous id (匿名编号), recomputed with CRM_ML_EXPORT_SECRET, which must be the "
        "key the lists were written with, or by the customer id (客户编号) in unmasked lists. "
        "Masked lists written under another key (an earlier one, or the demo's, kept in "
        "data/demo_export_secret) cannot be searched with it: they are counted and named, to "
        "search again with the key they were written with. "
        "Ids merged into the same person are searched too.",
    )
    find.add_argument("customer_id", metavar="ID", help="a customer id (a merged-away one works)")
    find.set_defaults(func=cmd_lists_find)
    redact = lsub.add_parser(
        "redact",
        help="remove one customer from every list file already written",
        description="Find the customer as `crm-ml lists find` does (published lists, the "
        "_replaced archives, unpublished runs and files written elsewhere; ids merged into the "
        "same person too) and rewrite each file without their rows. The other rows, the header "
        "and the file's permissions stay as they were, and each file is replaced whole or not "
        "at all. Hidden copies that an interrupted export left beside a list are deleted: they "
        "are incomplete. The export_log rows of the files keep their status and record "
        "'redacted <time> UTC by <actor>: <n> row(s) of one person removed (<reason>)'. "
        "CRM_ML_EXPORT_SECRET must be the key the lists were written with; lists written under "
        "another key, files that cannot be read and logged files that are missing are named, "
        "to deal with by hand. Files already sent on (by e-mail, to a call centre) are not "
        "reached: the printed list says which files the customer was in.",
    )
    redact.add_argument("customer_id", metavar="ID", help="a customer id (a merged-away one works)")
    _add_export_log_audit(redact, verb="redacts", reason="the erasure request's number")
    redact.set_defaults(func=cmd_lists_redact)
    purge = lsub.add_parser(
        "purge-archive",
        help="delete archived (_replaced) lists made before a date",
        description="Delete every file under reports/<date>/_replaced/<time>/ whose archive "
        "time (UTC, the folder's name) is before --before, and mark their export_log rows "
        "'purged at <time> UTC by <actor>' with the reason, in one transaction: if the rows "
        "cannot be marked, no file is deleted. Published lists are never touched.",
    )
    purge.add_argument(
        "--before",
        type=_as_of,
        required=True,
        help="purge archives made before this date (UTC), e.g. 2026-06-01",
    )
    _add_export_log_audit(purge, verb="purges", reason="the retention rule")
    purge.set_defaults(func=cmd_lists_purge_archive)
