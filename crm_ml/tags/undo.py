"""Withdrawing a rule and model tag run applied at a mistaken date (``crm-ml tags undo``).

Tags are applied forward in time, so one run at a mistyped date (2026-02-08
for 2026-01-08) makes every run before that date fail.
:func:`undo_apply_tags` withdraws such a run: the rule and model memberships
it opened at that instant are deleted and those it ended then are reopened,
in one transaction and through the same
:func:`~crm_ml.tags.apply.withdraw_memberships` that a re-run at the same
instant uses. The history then reads as if the run had never happened.

Only the latest run can be withdrawn: when a rule or model membership opened
or ended after it, the undo is refused, naming what and when. Manual and batch
tags are never touched. Deleted rows leave nothing behind; each reopened
membership's reason says who withdrew the run and why.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, or_, select, union

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.rules import as_timestamp
from crm_ml.store.connection import Store
from crm_ml.store.schema import CustomerTag
from crm_ml.tags.apply import AUTO_SOURCES, cli_date, withdraw_memberships
from crm_ml.tags.manual import require_audit

log = logging.getLogger(__name__)

#: How many instants a message lists before it stops.
_SHOWN = 3

_AUTO = CustomerTag.source.in_(AUTO_SOURCES)


def _rows_touching(conn: Connection, on: datetime, *, after: bool) -> pd.DataFrame:
    """Rule and model memberships opened or ended at ``on`` (or, with ``after``, after it)."""
    opened, ended = (
        (CustomerTag.valid_from > on, CustomerTag.valid_to > on)
        if after
        else (CustomerTag.valid_from == on, CustomerTag.valid_to == on)
    )
    rows = conn.execute(
        select(
            CustomerTag.tag_id,
            CustomerTag.customer_id,
            CustomerTag.valid_from,
            CustomerTag.valid_to,
        ).where(_AUTO, or_(opened, ended))
    ).all()
    return pd.DataFrame(rows, columns=["tag", "customer_id", "valid_from", "valid_to"])


def _latest_instants(conn: Connection) -> list[datetime]:
    """Return when rule or model memberships last opened or ended, latest first."""
    instants = union(
        select(CustomerTag.valid_from.label("at")).where(_AUTO),
        select(CustomerTag.valid_to.label("at")).where(_AUTO, CustomerTag.valid_to.is_not(None)),
    ).subquery()
    query = select(instants.c.at).order_by(instants.c.at.desc()).limit(_SHOWN)
    return list(conn.execute(query).scalars())


def history_end(conn: Connection) -> datetime | None:
    """Return the latest instant of any rule or model tag's history, or None without any."""
    latest = conn.execute(
        select(func.max(CustomerTag.valid_from), func.max(CustomerTag.valid_to)).where(_AUTO)
    ).one()
    return max((t for t in latest if t is not None), default=None)


def _no_run(conn: Connection, on: datetime) -> NotFoundError:
    instants = _latest_instants(conn)
    known = (
        f"the latest runs: {', '.join(f'{t:%Y-%m-%d %H:%M}' for t in instants)}"
        if instants
        else "no rule or model tag has any history yet"
    )
    return NotFoundError(
        f"No rule or model tag membership was opened or closed at {on:%Y-%m-%d %H:%M}, so "
        f"there is no run to withdraw there ({known}). Give the date the run was applied at, "
        "as it was given to `crm-ml tags apply` (--as-of)."
    )


def _changes_by_instant(later: pd.DataFrame, on: datetime) -> pd.DataFrame:
    """Count, per instant after ``on`` and tag, the memberships opened and closed then."""
    events = pd.concat(
        [
            pd.DataFrame({"at": later["valid_from"], "tag": later["tag"], "kind": "opened"}),
            pd.DataFrame({"at": later["valid_to"], "tag": later["tag"], "kind": "closed"}),
        ]
    )
    events = events[events["at"].notna() & (pd.to_datetime(events["at"]) > pd.Timestamp(on))]
    counts = events.groupby(["at", "tag", "kind"]).size().unstack("kind", fill_value=0)
    return counts.reindex(columns=["opened", "closed"], fill_value=0)


def _later_history(later: pd.DataFrame, on: datetime) -> ValidationError:
    counts = _changes_by_instant(later, on)
    instants = sorted(counts.index.get_level_values("at").unique())
    described = []
    for at in instants[:_SHOWN]:
        tags = [
            f"{tag} ({', '.join(f'{n} {kind}' for kind, n in row.items() if n)})"
            for tag, row in counts.loc[at].iterrows()
        ]
        described.append(f"at {pd.Timestamp(at):%Y-%m-%d %H:%M} {', '.join(tags)}")
    more = f" (and {len(instants) - _SHOWN} more instants)" if len(instants) > _SHOWN else ""
    last = pd.Timestamp(instants[-1]).to_pydatetime()
    return ValidationError(
        f"Cannot withdraw the rule and model tag run at {on:%Y-%m-%d %H:%M}: memberships were "
        f"recorded after it: {'; '.join(described)}{more}. Those later runs started from what "
        "this one wrote, so only the latest run can be withdrawn. Nothing was changed. Withdraw "
        f"the later runs first, latest first: `crm-ml tags undo --as-of {cli_date(last)} "
        '--reason "…"`.'
    )


def undo_apply_tags(store: Store, as_of: Any, *, actor: str, reason: str) -> pd.DataFrame:
    """Withdraw the rule and model tag run applied at ``as_of`` (a mistaken date, say).

    Deletes the memberships the run opened at ``as_of`` and reopens those it
    ended then, in one transaction; manual and batch tags are left alone.

    Parameters
    ----------
    store : Store
    as_of : datetime-like
        The instant the run was applied at, as given to :func:`~crm_ml.tags.apply_tags`.
    actor, reason : str
        Who withdraws it and why (both required), appended to the reason of
        every membership reopened.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``tag`` (the tags the run changed, sorted); columns
        ``deleted`` (memberships it opened) and ``reopened`` (memberships it ended).

    Raises
    ------
    NotFoundError
        If no rule or model membership opened or ended at ``as_of``.
    ValidationError
        If ``actor`` or ``reason`` is blank, or a rule or model membership
        opened or ended after ``as_of`` (withdraw that later run first).
        Nothing is changed then.
    """
    require_audit(
        actor, reason, work="Withdrawing a tag run", kept=", kept on the memberships it reopens"
    )
    on = as_timestamp(as_of)
    note = f" | end at {on:%Y-%m-%d %H:%M} withdrawn by {actor}: {reason}"
    with store.begin() as conn:
        rows = _rows_touching(conn, on, after=False)
        if rows.empty:
            raise _no_run(conn, on)
        later = _rows_touching(conn, on, after=True)
        if not later.empty:
            raise _later_history(later, on)
        for tag in sorted(set(rows["tag"])):
            withdraw_memberships(conn, tag, on, opened=None, closed=None, note=note)
    opened = pd.to_datetime(rows["valid_from"]) == pd.Timestamp(on)
    summary = (
        pd.DataFrame({"tag": rows["tag"], "deleted": opened, "reopened": ~opened})
        .groupby("tag")
        .sum()
        .astype("int64")
    )
    log.info("%s withdrew the tag run at %s (%s): %s", actor, on, reason, summary.sum().to_dict())
    return summary


def tags_undo_command(store: Store, as_of: Any, *, actor: str, reason: str) -> str:
    """Withdraw the tag run at ``as_of`` (:func:`undo_apply_tags`) and say what changed.

    Returns
    -------
    str
        What was withdrawn, a table of tags with rows deleted and reopened,
        and the date ``crm-ml tags apply`` accepts from now on.
    """
    on = as_timestamp(as_of)
    summary = undo_apply_tags(store, on, actor=actor, reason=reason)
    deleted, reopened = int(summary["deleted"].sum()), int(summary["reopened"].sum())
    with store.connect() as conn:
        end = history_end(conn)
    header = (
        f"Withdrew the rule and model tag run at {on:%Y-%m-%d %H:%M}: {len(summary)} "
        f"tag{'s' if len(summary) != 1 else ''}, {deleted:,} memberships it opened deleted, "
        f"{reopened:,} it closed reopened."
    )
    footer = (
        "Rule and model tags now have no history: `crm-ml tags apply` accepts any date."
        if end is None
        else f"Rule and model tags now have history up to {end:%Y-%m-%d %H:%M}: "
        f"`crm-ml tags apply` accepts a date from {end:%Y-%m-%d} on."
    )
    return "\n".join([header, summary.to_string(), footer])
