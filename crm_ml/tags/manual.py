"""Manual and batch tagging, with who did it and why.

People tag customers one by one (``source='manual'``) or in batches from a
list of ids or a rule (``source='batch'``). Every change needs an ``actor``
and a ``reason``; the ``customer_tag`` rows are the audit trail. A removal
closes the membership (``valid_to``) and appends who removed it and why to
the row's reason, so nothing is deleted.

A change is dated forward of the tag's own history for these customers, and
after every segment snapshot or list export that read the tag
(:func:`~crm_ml.tags.backdating.check_not_before_lists`): the rows do not say
when a change was entered, so an earlier date would rewrite what a sent list
was built from.

Only tags of kind ``manual`` can be set this way: rule and model tags are
owned by :func:`~crm_ml.tags.apply.apply_tags`, which would overwrite them.

A customer erased on request is never tagged again: :func:`tag_customers`
skips them (action ``erased``) and says so, so that a campaign's old list of
ids, or a batch rule over the features, still tags everyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import pandas as pd
from sqlalchemy import Connection, Table, and_, bindparam, select

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features.spec import when_text
from crm_ml.rules import as_timestamp, compile_rule, evaluate_rule
from crm_ml.store.admin import unknown_customers, utc_now
from crm_ml.store.connection import Store
from crm_ml.store.erased import is_erased, lock_out_erasures
from crm_ml.store.schema import CustomerTag
from crm_ml.tags.backdating import check_not_before_lists
from crm_ml.tags.definitions import TagDefinition, get_tag_definition, tag_vocabulary

log = logging.getLogger(__name__)

_TABLE = cast(Table, CustomerTag.__table__)


def _manual_tag(store: Store, tag: str) -> TagDefinition:
    try:
        definition = get_tag_definition(store, tag)
    except NotFoundError as exc:
        # Manual tags are not in the built-in library: people define them, so say how.
        raise NotFoundError(
            f"{exc} To define {tag!r} as a manual tag: crm-ml tags define {tag} --label <中文名> "
            "(in Python: save_tag_definition(store, TagDefinition(name, label, kind='manual')))."
        ) from exc
    if definition.kind != "manual":
        raise ValidationError(
            f"Tag {tag!r} is a {definition.kind} tag, set by apply_tags from its rule; manual or "
            "batch changes would be overwritten. Define a manual tag (kind='manual') instead."
        )
    return definition


def require_audit(
    actor: str,
    reason: str,
    *,
    work: str = "Manual and batch tagging",
    kept: str = " for the audit trail",
) -> None:
    """Refuse a change to tag history without an actor and a reason (``kept``: where they go)."""
    if not (actor and str(actor).strip()) or not (reason and str(reason).strip()):
        raise ValidationError(
            f"{work} needs an actor and a reason{kept}; got actor={actor!r}, reason={reason!r}."
        )


def _clean_ids(customer_ids: Iterable[Any]) -> list[str]:
    ids = [str(c).strip() for c in customer_ids]
    if any(not c for c in ids):
        raise ValidationError("A customer id in the list is blank; remove blank lines and retry.")
    return list(dict.fromkeys(ids))


def _latest_rows(conn: Connection, tag: str) -> pd.DataFrame:
    rows = conn.execute(
        select(CustomerTag.customer_id, CustomerTag.valid_from, CustomerTag.valid_to).where(
            CustomerTag.tag_id == tag
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["customer_id", "valid_from", "valid_to"])
    return frame.sort_values(["customer_id", "valid_from"]).groupby("customer_id").tail(1)


def _check_not_before(latest: pd.DataFrame, ids: list[str], at: datetime, tag: str) -> None:
    mine = latest[latest["customer_id"].isin(ids)]
    reached = pd.concat([mine["valid_from"], mine["valid_to"].dropna()])
    if not reached.empty and pd.Timestamp(reached.max()) > pd.Timestamp(at):
        raise ValidationError(
            f"Tag {tag!r} already has changes after {at:%Y-%m-%d %H:%M} for some of these "
            f"customers (latest {pd.Timestamp(reached.max()):%Y-%m-%d %H:%M}). Tag forward in time."
        )


#: How far past the clock a manual change may be dated: a day covers every time zone's today.
FUTURE_GRACE = timedelta(days=1)


def _check_not_future(at: datetime, tag: str) -> None:
    """Refuse a change dated beyond today: most likely a mistyped year or month."""
    if at > utc_now() + FUTURE_GRACE:
        raise ValidationError(
            f"Tag {tag!r}: the change is dated {when_text(at)}, in the future. A manual tag "
            "counts from its date, so no rule, list or report would see it until then. Check "
            "the date, or leave it out (`--at`) to change the tag now."
        )


def tag_customers(
    store: Store,
    tag: str,
    customer_ids: Iterable[Any],
    *,
    at: Any,
    actor: str,
    reason: str,
    source: Literal["manual", "batch"] = "manual",
) -> pd.DataFrame:
    """Give ``tag`` to customers from ``at`` on, recording who did it and why.

    Parameters
    ----------
    store : Store
    tag : str
        A manual tag.
    customer_ids : iterable
        Customers to tag; every one must exist, or nothing is written.
    at : datetime-like
        When the membership starts.
    actor, reason : str
        Who asked for it and why (both required).
    source : {"manual", "batch"}

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` and ``action``: ``added``, ``already``, or ``erased``
        for a customer erased on request, who is not tagged (and a warning logged).

    Raises
    ------
    ValidationError
        If ``at`` is before a change of this tag for these customers, at or
        before a segment snapshot or list export that read the tag, or more than
        a day past now (:data:`FUTURE_GRACE`); nothing is written.
    """
    require_audit(actor, reason)
    _manual_tag(store, tag)
    on, ids = as_timestamp(at, "at"), _clean_ids(customer_ids)
    _check_not_future(on, tag)
    vocabulary = tag_vocabulary(store)  # before the transaction: it reads on its own connection
    with store.begin() as conn:
        unknown = unknown_customers(conn, ids)
        if unknown:
            raise ValidationError(
                f"{len(unknown)} customer id(s) are not in the store, e.g. "
                f"{unknown[:5]}; nothing was tagged. Fix the list and retry."
            )
        erased = _erased_among(conn, ids, tag)
        latest = _latest_rows(conn, tag)
        _check_not_before(latest, ids, on, tag)
        check_not_before_lists(conn, tag, on, vocabulary)
        holding = set(latest.loc[latest["valid_to"].isna(), "customer_id"])
        new = [c for c in ids if c not in holding and c not in erased]
        if new:
            conn.execute(
                _TABLE.insert(),
                [
                    {
                        "customer_id": c,
                        "tag_id": tag,
                        "valid_from": on,
                        "valid_to": None,
                        "source": source,
                        "actor": actor,
                        "reason": reason,
                    }
                    for c in new
                ],
            )
    log.info("%s tagged %d customers %s (%s)", actor, len(new), tag, source)
    added = set(new)
    actions = ["erased" if c in erased else "added" if c in added else "already" for c in ids]
    return pd.DataFrame({"customer_id": ids, "action": actions})


def _erased_among(conn: Connection, ids: list[str], tag: str) -> set[str]:
    """Return the customers of ``ids`` erased on request, warning that they are not tagged."""
    found = is_erased(pd.Index(ids, dtype="str"), lock_out_erasures(conn))
    erased = [c for c, hit in zip(ids, found, strict=True) if hit]
    if erased:
        shown = ", ".join(repr(c) for c in erased[:5]) + (" …" if len(erased) > 5 else "")
        log.warning(
            "%d customer(s) were not given tag %r: erased on request (`crm-ml customers "
            "erase`), nothing more is recorded about them: %s",
            len(erased), tag, shown,
        )  # fmt: skip
    return set(erased)


def untag_customers(
    store: Store, tag: str, customer_ids: Iterable[Any], *, at: Any, actor: str, reason: str
) -> pd.DataFrame:
    """End ``tag`` for customers at ``at``; who removed it and why is kept on the row.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` and ``action`` (``removed`` or ``not_tagged``).

    Raises
    ------
    ValidationError
        As :func:`tag_customers`, for a date before this tag's history or a list
        that read it, or in the future.
    """
    require_audit(actor, reason)
    _manual_tag(store, tag)
    on, ids = as_timestamp(at, "at"), _clean_ids(customer_ids)
    _check_not_future(on, tag)
    table = _TABLE
    vocabulary = tag_vocabulary(store)  # before the transaction: it reads on its own connection
    with store.begin() as conn:
        latest = _latest_rows(conn, tag)
        _check_not_before(latest, ids, on, tag)
        check_not_before_lists(conn, tag, on, vocabulary)
        open_rows = latest[latest["valid_to"].isna() & latest["customer_id"].isin(ids)]
        reasons = dict(
            conn.execute(
                select(CustomerTag.customer_id, CustomerTag.reason).where(
                    CustomerTag.tag_id == tag, CustomerTag.valid_to.is_(None)
                )
            ).all()
        )
        params = [
            {
                "c": c,
                "r": f"{reasons.get(c) or ''} | removed {on:%Y-%m-%d %H:%M} by {actor}: {reason}",
            }
            for c in open_rows["customer_id"]
        ]
        if params:
            match = and_(
                table.c.tag_id == tag,
                table.c.customer_id == bindparam("c"),
                table.c.valid_to.is_(None),
            )
            conn.execute(
                table.update().where(match).values(valid_to=on, reason=bindparam("r")), params
            )
    removed = {p["c"] for p in params}
    log.info("%s removed %s from %d customers", actor, tag, len(removed))
    return pd.DataFrame(
        {"customer_id": ids, "action": ["removed" if c in removed else "not_tagged" for c in ids]}
    )


def batch_tag_from_rule(
    store: Store, tag: str, rule: str, features: pd.DataFrame, *, at: Any, actor: str, reason: str
) -> pd.DataFrame:
    """Tag, once, every customer who matches ``rule`` at ``at`` (a batch, not a rule tag).

    The rule is checked like a saved rule and the matching customers get the
    manual tag with ``source='batch'``; the rule text is kept in the reason.

    Returns
    -------
    pandas.DataFrame
        As :func:`tag_customers`.
    """
    require_audit(actor, reason)
    compiled = compile_rule(rule, tag_vocabulary(store, features))
    matches = evaluate_rule(store, compiled, features, at)
    return tag_customers(
        store, tag, matches, at=at, actor=actor, reason=f"{reason} [rule: {rule}]", source="batch"
    )
