"""``crm-ml`` commands for privacy requests: erasing a customer, withdrawing consent."""

from __future__ import annotations

import argparse

from crm_ml.cli._common import _add_commands, _open_store
from crm_ml.config import Settings
from crm_ml.store.schema import CONSENT_CHANNELS, CONSENT_PURPOSES


def cmd_customers_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase a person on request: anonymise, forget identities, withdraw every consent."""
    from crm_ml.erasure import erase_customer

    result = erase_customer(
        _open_store(settings), args.customer_id, actor=args.actor, reason=args.reason
    )
    print(result.summary())
    return 0


def cmd_consent_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    """Record a withdrawal of one purpose on every channel (or the ones named)."""
    from crm_ml.store.consent_requests import withdraw_consent

    result = withdraw_consent(
        _open_store(settings),
        args.customer_ids,
        purpose=args.purpose,
        source=args.source,
        channels=args.channel or CONSENT_CHANNELS,
    )
    print(result.summary())
    return 0


# --------------------------------------------------------------------------- parser


def _add_customers_erase(csub: argparse._SubParsersAction) -> None:
    """Add ``erase`` to the ``customers`` group (``csub``: its sub-commands)."""
    e = csub.add_parser(
        "erase",
        help="erase a person on request (删除个人信息): anonymise, forget identities",
        description="In one transaction, for the person ID belongs to (with every record "
        "merged into the same customer): blank the name and profile, delete custom field "
        "values and identities (phone, email, WeChat, member card), scrub profile history, "
        "withdraw consent on every channel and purpose, and delete scores, tag memberships "
        "and segment snapshot members; mark every record erased, so later scoring, tagging, "
        "segments and imports leave it out. Orders, points and events stay for accounting, "
        "keyed by an id that no longer leads to the person. Cannot be undone. Files already "
        "written (lists and reports under reports/, exports) and MLflow runs are not "
        "reached: find lists with `crm-ml lists find ID`.",
    )
    e.add_argument("customer_id", metavar="ID", help="any customer id of the person")
    e.add_argument("--actor", required=True, help="who carries out the request (audited)")
    e.add_argument(
        "--reason",
        required=True,
        help="why, e.g. the request's ticket number (audited; no personal data)",
    )
    e.set_defaults(func=cmd_customers_erase)


def _add_consent(sub: argparse._SubParsersAction) -> None:
    """Add the ``consent`` group: ``consent withdraw``."""
    p = sub.add_parser("consent", help="act on customers' consent requests")
    csub = _add_commands(p, "consent_command")
    w = csub.add_parser(
        "withdraw",
        help="record a withdrawal on every channel (e.g. 不要再给我发任何营销信息)",
        description="Record consent 'withdrawn' now for PURPOSE on every channel (or each "
        "--channel given), one row per customer and channel, checked like a consent file. "
        "Lists built afterwards leave the customers out; lists already sent are not "
        "recalled. Other purposes are not changed: withdraw them too if the customer asked "
        "to stop all contact.",
    )
    w.add_argument("customer_ids", nargs="+", metavar="ID", help="customer ids")
    w.add_argument("--purpose", required=True, choices=CONSENT_PURPOSES, help="purpose withdrawn")
    w.add_argument(
        "--channel",
        action="append",
        choices=CONSENT_CHANNELS,
        help="a channel to withdraw; repeat for several (default: every channel)",
    )
    w.add_argument(
        "--source",
        required=True,
        help="how the customer asked, e.g. call_center or sms_reply (stored with each row)",
    )
    w.set_defaults(func=cmd_consent_withdraw)
