"""Evaluating rule and model tags and storing memberships with history.

:func:`apply_tags` opens a membership (``valid_from = as_of``) for each
customer who newly matches, closes (``valid_to = as_of``) each one that no
longer does, and leaves the rest alone — so the table holds intervals, not
daily copies, and any past date can be queried. Tags are applied forward in
time; to see what a rule *would* have tagged at an earlier date without
writing anything, use :func:`evaluate_tags` on that date's features.

Because a customer missing from the features frame counts as "no longer
matches", :func:`apply_tags` refuses, before writing anything, a frame that
is empty, was built for another date, or leaves out any customer who exists
at ``as_of``: a partial frame would otherwise end everyone else's tags, and
the closures would stay in the history.

Customers erased on request (``crm-ml customers erase``) are in the features
frame, since their orders are kept, but are never tagged: :func:`evaluate_tags`
leaves them out, and :func:`apply_tags` says how many it left out.

A run at a mistaken date (a typo seven months ahead) would block every run
before it; :func:`crm_ml.tags.undo.undo_apply_tags` withdraws it, through the
same :func:`withdraw_memberships` that a re-run at the same instant uses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, time
from typing import Any, cast

import pandas as pd
from sqlalchemy import Connection, Table, and_, bindparam, func, select

from crm_ml.errors import RuleError, ValidationError
from crm_ml.features.build import check_features_date
from crm_ml.rules import Rule, RuleContext, as_timestamp, build_context, compile_rule
from crm_ml.store.connection import Store
from crm_ml.store.erased import drop_erased, erased_note, is_erased, lock_out_erasures
from crm_ml.store.purges import refuse_purged_date
from crm_ml.store.schema import Customer, CustomerMerge, CustomerTag
from crm_ml.tags.definitions import (
    TagDefinition,
    load_tag_definitions,
    save_tag_definitions,
    tag_vocabulary,
)
from crm_ml.tags.library import builtin_tags

log = logging.getLogger(__name__)

_TABLE = cast(Table, CustomerTag.__table__)

#: Sources of the memberships apply_tags owns (manual and batch ones are people's).
AUTO_SOURCES = ("rule", "model")

_EXAMPLES = 5

_PASS_INSTEAD = (
    "Nothing was written. Pass customer_features(store, as_of) for the same as_of; to try "
    "rules on some customers without writing, use evaluate_tags(store, features, as_of)."
)


def _order(definitions: Mapping[str, TagDefinition], rules: Mapping[str, Rule]) -> list[str]:
    """Order tags so that a tag is computed before any rule that reads it."""
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            raise RuleError(
                f"Tags refer to each other in a cycle: {' -> '.join((*path, name))}. "
                "Break the cycle by rewriting one of these rules."
            )
        state[name] = "active"
        for dep in sorted(rules[name].tags & set(rules)):
            visit(dep, (*path, name))
        state[name] = "done"
        ordered.append(name)

    for name in sorted(definitions):
        visit(name, ())
    return ordered


def _auto_definitions(
    store: Store, definitions: Iterable[TagDefinition] | None
) -> list[TagDefinition]:
    if definitions is not None:
        chosen = [d for d in definitions if d.kind in AUTO_SOURCES]
        return save_tag_definitions(store, chosen)
    stored = [d for d in load_tag_definitions(store) if d.kind in AUTO_SOURCES]
    if stored:
        return stored
    log.info("No rule or model tags are defined yet; installing the built-in library")
    return save_tag_definitions(store, builtin_tags())


def active_customers(conn: Connection, on: datetime) -> pd.Index:
    """Return the customers who exist at ``on``: active, not merged away, created before it.

    The population :func:`~crm_ml.features.customer_features` builds a frame
    for. As there, a merge counts whatever its date (a duplicate found later
    was the same person all along), so a merged-away id is never expected.

    Returns
    -------
    pandas.Index
        Sorted ``customer_id`` values.
    """
    ids = conn.execute(
        select(Customer.customer_id).where(
            Customer.status == "active",
            Customer.created_at < on,
            Customer.customer_id.not_in(select(CustomerMerge.merged_id)),
        )
    ).scalars()
    return pd.Index(sorted(ids), dtype="str", name="customer_id")


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def _check_features_cover(features: pd.DataFrame, population: pd.Index, on: datetime) -> None:
    """Refuse a frame that leaves out any customer of ``population`` (or is empty)."""
    if len(features) == 0:
        raise ValidationError(
            f"The features frame is empty, but {len(population):,} customers exist at "
            f"{on:%Y-%m-%d %H:%M}: applying it would end every rule and model tag they hold. "
            + _PASS_INSTEAD
        )
    missing = population.difference(pd.Index(features.index.astype("str")))
    if len(missing):
        examples = ", ".join(repr(c) for c in missing[:_EXAMPLES])
        raise ValidationError(
            f"The features frame covers {len(population) - len(missing):,} of the "
            f"{len(population):,} customers who exist at {on:%Y-%m-%d %H:%M} (active, not "
            f"merged away, created before it); {len(missing):,} {_are(len(missing))} missing, "
            f"e.g. {examples}. "
            "apply_tags ends the tags of every customer missing from the frame. " + _PASS_INSTEAD
        )


def check_features_frame(store: Store, features: pd.DataFrame, as_of: Any) -> None:
    """Refuse a features frame that :func:`apply_tags` cannot safely apply at ``as_of``.

    Raises
    ------
    ValidationError
        If the frame is empty, its ``attrs["as_of"]`` (when set) differs from
        ``as_of``, or its index leaves out a customer who exists at ``as_of``
        (see :func:`active_customers`).
    """
    on = as_timestamp(as_of)
    check_features_date(features, on, use="tagged")
    with store.connect() as conn:
        population = active_customers(conn, on)
    _check_features_cover(features, population, on)


def evaluate_tags(
    store: Store,
    features: pd.DataFrame,
    as_of: Any,
    *,
    definitions: Iterable[TagDefinition] | None = None,
) -> dict[str, pd.Index]:
    """Return who matches each rule or model tag at ``as_of``, without writing.

    Parameters
    ----------
    store : Store
        Read for stored tags, consent and scores that rules refer to.
    features : pandas.DataFrame
        Indexed by ``customer_id``, as of ``as_of``.
    as_of : datetime-like
    definitions : iterable of TagDefinition, optional
        Defaults to the stored rule and model tags (checked, not saved).

    Returns
    -------
    dict of str to pandas.Index
        Sorted ``customer_id`` values per tag name; never a customer erased on request.

    Raises
    ------
    ValidationError
        If ``features.attrs["as_of"]`` is set and differs from ``as_of``.
    """
    check_features_date(features, as_timestamp(as_of), use="tagged")
    features, _ = drop_erased(store, features)
    chosen = list(definitions) if definitions is not None else load_tag_definitions(store)
    return _members(store, features, as_of, [d for d in chosen if d.kind in AUTO_SOURCES])


def _members(
    store: Store, features: pd.DataFrame, as_of: Any, chosen: list[TagDefinition]
) -> dict[str, pd.Index]:
    """Evaluate ``chosen`` tags over ``features`` (erased customers already left out)."""
    vocab = tag_vocabulary(store, features, extra_tags=[d.name for d in chosen])
    by_name = {d.name: d for d in chosen}
    rules = {name: compile_rule(d.rule or "", vocab) for name, d in by_name.items()}
    base = build_context(store, features, as_of, rules.values())
    computed: dict[str, pd.Index] = {}
    for name in _order(by_name, rules):
        context = RuleContext(base.features, {**base.tags, **computed}, base.consents)
        matches = rules[name].evaluate(context)
        computed[name] = pd.Index(sorted(matches.index[matches.to_numpy()]), name="customer_id")
    return computed


def apply_tags(
    store: Store,
    features: pd.DataFrame,
    as_of: Any,
    *,
    definitions: Iterable[TagDefinition] | None = None,
    actor: str = "crm_ml",
) -> pd.DataFrame:
    """Evaluate rule and model tags at ``as_of`` and store the changes as history.

    Parameters
    ----------
    store : Store
    features : pandas.DataFrame
        Indexed by ``customer_id``: the features as of ``as_of`` of every
        customer who exists then, i.e. ``customer_features(store, as_of)``.
        A customer left out counts as no longer matching, so a partial frame
        is refused.
    as_of : datetime-like
        The date memberships open and close at.
    definitions : iterable of TagDefinition, optional
        Saved (checked, versioned) before use. Defaults to the stored rule and
        model tags, or the built-in library when none is stored.
    actor : str
        Recorded on opened memberships.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``tag``; columns ``version, members, added, removed``. Its
        ``attrs`` hold ``erased`` (customers of ``features`` erased on request,
        whom no tag includes) and ``erased_note`` (saying so; empty when none).

    Raises
    ------
    ValidationError
        If ``features`` is empty, was built for another date, or leaves out
        customers who exist at ``as_of`` (see :func:`check_features_frame`);
        if a tag's history already reaches past ``as_of`` (apply forward in
        time); or if a retention purge deleted what is dated before ``as_of``.
        Nothing is written then.
    RuleError
        If a rule is bad or tags refer to each other in a cycle.
    """
    on = as_timestamp(as_of)
    check_features_frame(store, features, on)  # before anything, definitions included, is saved
    chosen = _auto_definitions(store, definitions)
    check_apply_date(store, on, [d.name for d in chosen])
    features, erased = drop_erased(store, features)
    members = _members(store, features, on, chosen)
    rows = []
    with store.begin() as conn:
        refuse_purged_date(conn, on, what="tag history")  # a purge committed while the rules ran
        erased_meanwhile = lock_out_erasures(conn)  # erased while the rules ran
        members = {n: ids[~is_erased(ids, erased_meanwhile)] for n, ids in members.items()}
        for definition in chosen:
            added, removed = _write_changes(conn, definition, members[definition.name], on, actor)
            rows.append(
                (definition.name, definition.version, len(members[definition.name]), added, removed)
            )
    summary = pd.DataFrame(rows, columns=["tag", "version", "members", "added", "removed"])
    log.info("Applied %d tags at %s", len(summary), on)
    return _with_erased(summary.set_index("tag"), len(erased))


def _with_erased(summary: pd.DataFrame, erased: int) -> pd.DataFrame:
    """Record on ``summary`` how many erased customers no tag includes, for the caller to say."""
    note = erased_note(erased, "the rule and model tags")
    if note:
        log.info("%s", note)
    summary.attrs.update(erased=erased, erased_note=note)
    return summary


def cli_date(on: datetime) -> str:
    """Return ``on`` as ``--as-of`` reads it: ``2026-02-08``, or ``2026-02-07T16:00``."""
    return f"{on:%Y-%m-%d}" if on.time() == time() else f"{on:%Y-%m-%dT%H:%M}"


def _check_forward(conn: Connection, tag: str, on: datetime) -> None:
    latest = conn.execute(
        select(func.max(CustomerTag.valid_from), func.max(CustomerTag.valid_to)).where(
            CustomerTag.tag_id == tag, CustomerTag.source.in_(AUTO_SOURCES)
        )
    ).one()
    reached = max((t for t in latest if t is not None), default=None)
    if reached is not None and reached > on:
        # Only apply_tags writes these rows, so the later history is a run that undo can withdraw.
        raise ValidationError(
            f"Tag {tag!r} already has history up to {reached:%Y-%m-%d %H:%M}, after as_of "
            f"{on:%Y-%m-%d %H:%M}: tags are applied forward in time, so expected a date from "
            f"{reached:%Y-%m-%d} on. If the run at {reached:%Y-%m-%d %H:%M} was a mistake (a "
            f"mistyped date), withdraw it with `crm-ml tags undo --as-of {cli_date(reached)} "
            '--reason "…"` (crm_ml.tags.undo_apply_tags(store, as_of, actor=…, reason=…) '
            "in Python), then apply again. To see who had a tag on a past date, run "
            f"`crm-ml tags list --on {on:%Y-%m-%d}` (customers_with_tag(store, tag, on) in "
            "Python); to try the rules on a past date without writing, use "
            "evaluate_tags(store, features_then, as_of) in Python."
        )


def check_apply_date(store: Store, as_of: Any, names: Iterable[str] | None = None) -> None:
    """Refuse an ``as_of`` earlier than the history of a rule or model tag, or than a purge.

    The check :func:`apply_tags` makes, for callers to make first: ``crm-ml
    tags apply`` before it builds features, and a report that applies tags
    (``segment_lists``) in its setup cell, before it scores the date. A refused
    date then costs nothing and leaves nothing written.

    Parameters
    ----------
    store : Store
        Read only.
    as_of : datetime-like
        The date the tags would be applied at.
    names : iterable of str, optional
        The tags to check; by default every stored rule and model tag, the
        ones :func:`apply_tags` applies without ``definitions``.

    Raises
    ------
    ValidationError
        If a tag's history already reaches past ``as_of``, or a retention
        purge deleted history dated before ``as_of``: a tag that has not run
        since would write it again.
    """
    on = as_timestamp(as_of)
    if names is None:
        names = [d.name for d in load_tag_definitions(store) if d.kind in AUTO_SOURCES]
    with store.connect() as conn:
        refuse_purged_date(conn, on, what="tag history")
        for name in names:
            _check_forward(conn, name, on)


def withdraw_memberships(
    conn: Connection,
    tag: str,
    on: datetime,
    *,
    opened: Iterable[str] | None,
    closed: Iterable[str] | None,
    note: str = "",
) -> None:
    """Take back what a run at ``on`` did to ``tag``'s rule or model memberships.

    For the customers in ``opened``, the membership that opened at ``on`` is
    deleted; for those in ``closed``, the one that ended at ``on`` is reopened
    (``note`` appended to its reason). ``None`` stands for every customer. A
    re-run at the same instant (:func:`apply_tags`) and
    :func:`crm_ml.tags.undo.undo_apply_tags` both go through here. Manual and
    batch memberships are never touched.
    """
    table = _TABLE
    auto = and_(table.c.tag_id == tag, table.c.source.in_(AUTO_SOURCES))
    one = table.c.customer_id == bindparam("c")
    values: dict[str, Any] = {"valid_to": None}
    if note:
        values["reason"] = func.coalesce(table.c.reason, "") + note
    for statement, customers in (
        (table.delete().where(auto, table.c.valid_from == on), opened),
        (table.update().where(auto, table.c.valid_to == on).values(values), closed),
    ):
        if customers is None:
            conn.execute(statement)
        elif params := [{"c": c} for c in customers]:
            conn.execute(statement.where(one), params)


def _ended_at(conn: Connection, tag: str, on: datetime) -> set[str]:
    """Return the customers whose rule or model membership of ``tag`` ended at ``on``."""
    return set(
        conn.execute(
            select(CustomerTag.customer_id).where(
                CustomerTag.tag_id == tag,
                CustomerTag.source.in_(AUTO_SOURCES),
                CustomerTag.valid_to == on,
            )
        ).scalars()
    )


def _write_changes(
    conn: Connection, definition: TagDefinition, new: pd.Index, on: datetime, actor: str
) -> tuple[int, int]:
    tag, table = definition.name, _TABLE
    _check_forward(conn, tag, on)
    open_rows = conn.execute(
        select(CustomerTag.customer_id, CustomerTag.valid_from).where(
            CustomerTag.tag_id == tag,
            CustomerTag.source.in_(AUTO_SOURCES),
            CustomerTag.valid_to.is_(None),
        )
    ).all()
    current = {row.customer_id: row.valid_from for row in open_rows}
    wanted = set(new)
    ended = sorted(set(current) - wanted)
    started = sorted(wanted - set(current))
    # A re-run at the same instant takes back what the earlier run did rather than stacking on
    # it: an interval that run opened and this one ends is removed, one that run ended and this
    # one wants is continued, so the history reads as if only this run had happened.
    ended_here = _ended_at(conn, tag, on) if started else set()
    withdraw_memberships(
        conn,
        tag,
        on,
        opened=[c for c in ended if current[c] == on],
        closed=[c for c in started if c in ended_here],
    )
    closing = [{"c": c} for c in ended if current[c] != on]
    if closing:
        match = and_(
            table.c.tag_id == tag, table.c.customer_id == bindparam("c"), table.c.valid_to.is_(None)
        )
        conn.execute(table.update().where(match).values(valid_to=on), closing)
    _open_memberships(conn, definition, [c for c in started if c not in ended_here], on, actor)
    return len(started), len(ended)


def _open_memberships(
    conn: Connection, definition: TagDefinition, customers: list[str], on: datetime, actor: str
) -> None:
    if not customers:
        return
    reason = f"{definition.kind} v{definition.version}"
    conn.execute(
        _TABLE.insert(),
        [
            {
                "customer_id": c,
                "tag_id": definition.name,
                "valid_from": on,
                "valid_to": None,
                "source": definition.kind,
                "actor": actor,
                "reason": reason,
            }
            for c in customers
        ],
    )
