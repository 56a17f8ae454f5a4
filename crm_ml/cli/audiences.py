"""``crm-ml`` commands for audiences: tags apply, list, undo, add, remove; segment commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from crm_ml.cli._common import _add_commands, _as_of, _check_as_of, _open_store
from crm_ml.cli.store import add_encoding_option
from crm_ml.config import Settings
from crm_ml.processes import login_name


def cmd_tags_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the rule and model tags as of a date, keeping history."""
    from crm_ml.tags import tags_apply_command

    store = _open_store(settings)
    _check_as_of(store, args.as_of)
    print(tags_apply_command(store, args.as_of, actor=login_name()))
    return 0


def cmd_tags_undo(args: argparse.Namespace, settings: Settings) -> int:
    """Withdraw the rule and model tag run applied at a date (a mistyped one, say)."""
    from crm_ml.tags.undo import tags_undo_command

    # No _check_as_of: the run to withdraw is often at a date the data does not reach.
    store = _open_store(settings)
    print(tags_undo_command(store, args.as_of, actor=login_name(), reason=args.reason))
    return 0


def cmd_tags_file(args: argparse.Namespace, settings: Settings) -> int:
    """Give (``tags add``) or end (``tags remove``) a manual tag for the customers in a file."""
    from crm_ml.tags import tag_customers_from_file

    result = tag_customers_from_file(
        _open_store(settings),
        args.tag,
        Path(args.file),
        actor=args.actor,
        reason=args.reason,
        at=args.at,
        column=args.column,
        remove=args.tags_command == "remove",
        encoding=args.encoding,
    )
    print(result.summary())
    return 0


def cmd_tags_define(args: argparse.Namespace, settings: Settings) -> int:
    """Define (or relabel) a manual tag, to be given with ``tags add``."""
    from crm_ml.tags.definitions import define_manual_tag

    tag, new = define_manual_tag(
        _open_store(settings), args.name, label=args.label, description=args.description
    )
    done = "Defined" if new else "Relabelled"
    print(
        f"{done} manual tag {tag.name!r} ({tag.label}). Give it to the customers in a file with: "
        f"crm-ml tags add {tag.name} --file FILE --actor WHO --reason WHY"
    )
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
            store, args.name, args.rule, actor=login_name(), label=args.label, kind=kind
        )
    )
    return 0


def cmd_segment_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the stored segments."""
    from crm_ml.segments import segment_list_command

    print(segment_list_command(_open_store(settings)))
    return 0


def cmd_segment_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show a segment; with --as-of, snapshot its members first."""
    from crm_ml.segments import segment_show_command

    store = _open_store(settings)
    if args.as_of is not None:
        _check_as_of(store, args.as_of)
    print(segment_show_command(store, args.name, as_of=args.as_of))
    return 0


def cmd_segment_history(args: argparse.Namespace, settings: Settings) -> int:
    """Show who changed a segment, when, and what."""
    from crm_ml.segments import segment_history_command

    print(segment_history_command(_open_store(settings), args.name))
    return 0


def cmd_segment_export(args: argparse.Namespace, settings: Settings) -> int:
    """Export a segment's consented, masked members, one file per owner."""
    import os

    from crm_ml.segments import segment_export_command
    from crm_ml.segments.export import check_unmask_reason

    check_unmask_reason(args.unmask, args.reason)  # before the store is opened
    out = Path(args.out) if args.out else settings.reports_dir / f"{args.as_of:%Y-%m-%d}" / "lists"
    store = _open_store(settings)
    _check_as_of(store, args.as_of)
    text = segment_export_command(
        store,
        args.name,
        args.as_of,
        channel=args.channel,
        purpose=args.purpose,
        out_dir=out,
        secret=os.environ.get("CRM_ML_EXPORT_SECRET"),
        actor=login_name(),
        unmask=args.unmask,
        unmask_reason=args.reason,
        language=settings.language,
    )
    print(text)
    return 0


# --------------------------------------------------------------------------- parser


def _add_tags(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tags",
        help="rule and model tags: apply, list, undo; manual tags: define, add, remove",
        description="Apply the rule and model tags (the built-in library the first time) and "
        "list tags. Define a manual tag with `tags define`, then give or end the manual tag "
        "for the customers listed in a file with `tags add` and `tags remove`; from Python: "
        "crm_ml.tags.tag_customers, untag_customers, tag_customers_from_file and "
        "batch_tag_from_rule.",
    )
    tsub = _add_commands(p, "tags_command")
    apply = tsub.add_parser(
        "apply",
        help="apply rule and model tags as of a date (installs the built-in library first time)",
    )
    apply.add_argument("--as-of", type=_as_of, required=True, help="date the tags describe")
    apply.set_defaults(func=cmd_tags_apply)
    lst = tsub.add_parser("list", help="list tags, with member counts on a date")
    lst.add_argument("--as-of", "--on", dest="on", type=_as_of, help="count members on this date")
    lst.set_defaults(func=cmd_tags_list)
    undo = tsub.add_parser(
        "undo",
        help="withdraw the rule and model tag run applied at a date (e.g. a mistyped one)",
        description="Delete the rule and model tag memberships the run at --as-of opened and "
        "reopen those it ended, so that runs for earlier dates are accepted again. Only the "
        "latest run can be withdrawn; manual and batch tags are never touched.",
    )
    undo.add_argument("--as-of", type=_as_of, required=True, help="the date the run was applied at")
    undo.add_argument("--reason", required=True, help="why, kept on the memberships reopened")
    undo.set_defaults(func=cmd_tags_undo)
    _add_tags_define(tsub)
    for name, verb in (("add", "give"), ("remove", "end")):
        _add_tags_file(tsub, name, verb)


def _add_tags_define(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "define",
        help="define a manual tag (or change its label), to give with `tags add`",
        description="Define a manual tag: one that people give to the customers in a file "
        "(`tags add`), such as 请勿联系 for do-not-contact requests. Run again to change its "
        "label or description. A name of a rule or model tag (see `tags list`) is refused.",
    )
    p.add_argument(
        "name", metavar="NAME", help="lower-case letters, digits, _; e.g. do_not_contact"
    )
    p.add_argument("--label", required=True, help="the name people see, e.g. 请勿联系")
    p.add_argument("--description", help="what it means and when to give it")
    p.set_defaults(func=cmd_tags_define)


def _add_tags_file(tsub: argparse._SubParsersAction, name: str, verb: str) -> None:
    p = tsub.add_parser(
        name,
        help=f"{verb} a manual tag for the customers listed in a CSV file",
        description=f"{verb.capitalize()} a manual tag for every customer id in FILE (a CSV "
        "file, UTF-8 with or without a BOM or GBK, as Excel saves it; or Parquet). Other "
        "columns are ignored and a repeated id counts once. Nothing is written unless every "
        "row is good: a blank or unknown id, or one that lost its leading zeros (12 for a "
        "stored 00012), is refused naming its line.",
    )
    p.add_argument("tag", metavar="TAG", help="a manual tag, e.g. vip")
    p.add_argument("--file", required=True, help="CSV file of customer ids")
    p.add_argument(
        "--column", default="customer_id", help="column of the ids (default: customer_id)"
    )
    p.add_argument("--actor", required=True, help="who asked for it, kept for the audit trail")
    p.add_argument("--reason", required=True, help="why, kept with the file's name")
    p.add_argument("--at", type=_as_of, help="when it takes effect (default: now)")
    add_encoding_option(p, "UTF-8, else GBK")
    p.set_defaults(func=cmd_tags_file)


def _add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="audiences defined by rules")
    ssub = _add_commands(p, "segment_command")
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
    lst = ssub.add_parser("list", help="list the stored segments and their latest size")
    lst.set_defaults(func=cmd_segment_list)
    show = ssub.add_parser("show", help="show a segment and its size over time")
    show.add_argument("name", help="segment name")
    show.add_argument("--as-of", type=_as_of, help="snapshot members at this date first")
    show.set_defaults(func=cmd_segment_show)
    history = ssub.add_parser("history", help="who changed a segment, when, and what")
    history.add_argument("name", help="segment name")
    history.set_defaults(func=cmd_segment_history)
    exp = ssub.add_parser(
        "export",
        help="export consented, masked members, one CSV per account manager",
        description="Only customers whose consent for CHANNEL and PURPOSE is granted at the "
        "date are written. Personal data is masked unless --unmask, which needs --reason; both "
        "are recorded in export_log, and unmasked files are readable by their owner only (mode "
        "0600). The pseudonymous id needs CRM_ML_EXPORT_SECRET in the environment; it is the "
        "same in every list, so an unmasked list de-masks masked ones for its customers.",
    )
    exp.add_argument("name", help="segment name")
    exp.add_argument(
        "--as-of",
        type=_as_of,
        required=True,
        help="the list's date: the segment's snapshot at that date is used, taken first if "
        "there is none; the list is sent now, so consent must have been granted before that "
        "date and not withdrawn since, and each customer goes to their account manager now",
    )
    exp.add_argument("--channel", required=True, help="sms, email, wechat, phone or app_push")
    exp.add_argument(
        "--purpose",
        default="marketing",
        help="consent purpose: marketing (default), service or research",
    )
    exp.add_argument("--out", help="folder (default reports/<as_of>/lists)")
    exp.add_argument(
        "--unmask",
        action="store_true",
        help="write full names, phones, emails and customer ids (needs --reason; logged; files "
        "mode 0600, owner only)",
    )
    exp.add_argument("--reason", help="why the list is unmasked (required with --unmask)")
    exp.set_defaults(func=cmd_segment_export)
