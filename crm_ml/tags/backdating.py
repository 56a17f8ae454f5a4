"""Refusing a manual tag change dated at or before a list that was built with the tag.

A segment snapshot (``segment_snapshot``) or a list export (``export_log``) as
of a date read the tags in force then. ``customer_tag`` does not record when a
change was entered, so a change dated before that list would silently rewrite
what it was built from: ``customers_with_tag(store, tag, date)`` would no longer
match the list that was sent. Such a change is refused, and the person is told
to date it after the list (e.g. now).

A list counts when the rule of the segment version that built it
(``segment_change``) reads the tag, directly or through rule and model tags
whose current rules read it (the dependencies
:func:`crm_ml.tags.apply.evaluate_tags` follows).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection, func, select

from crm_ml.errors import RuleError, ValidationError
from crm_ml.features.spec import when_text
from crm_ml.rules import Vocabulary, compile_rule
from crm_ml.store.schema import ExportLog, SegmentChange, SegmentDefinition, SegmentSnapshot
from crm_ml.store.schema import TagDefinition as TagRow

log = logging.getLogger(__name__)

#: ``(segment_id, rule_version or None, as_of, "a snapshot" | "an export")``.
_List = tuple[str, int | None, datetime, str]


def check_not_before_lists(
    conn: Connection, tag: str, at: datetime, vocabulary: Vocabulary
) -> None:
    """Refuse a manual change of ``tag`` dated ``at`` if a list built with the tag is not earlier.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The caller's, in the transaction that writes the change.
    tag : str
        The manual tag being changed.
    at : datetime
        When the change takes effect, naive UTC.
    vocabulary : Vocabulary
        What segment and tag rules may name (``tag_vocabulary(store)``).

    Raises
    ------
    ValidationError
        Naming the segment, the latest such list and the date to use instead.
    """
    lists = _lists_from(conn, at)
    if not lists:
        return
    paths = _tags_leading_to(conn, tag, vocabulary)
    rules = _segment_rules(conn)
    reads: dict[str, frozenset[str]] = {}
    hits = []
    for segment, version, on, what in lists:
        rule = rules.get((segment, version)) or rules.get((segment, None)) or ""
        if rule not in reads:
            reads[rule] = _tags_read(rule, vocabulary) if rule else frozenset()
        read = sorted(reads[rule] & set(paths))
        if read:
            hits.append((on, segment, what, paths[read[0]]))
    if hits:
        raise _refusal(tag, at, *max(hits))


def _lists_from(conn: Connection, at: datetime) -> list[_List]:
    # A list as of ``at`` itself counts: by ``valid_at`` (valid_from <= on < valid_to) a
    # change dated ``at`` is in force at ``at``, so it would change that list too.
    found: list[_List] = []
    for table, what in ((SegmentSnapshot, "a snapshot"), (ExportLog, "an export")):
        rows = conn.execute(
            select(table.segment_id, table.rule_version, func.max(table.as_of))
            .where(table.as_of >= at, table.segment_id.is_not(None))
            .group_by(table.segment_id, table.rule_version)
        ).all()
        found += [(str(s), None if v is None else int(v), on, what) for s, v, on in rows]
    return found


def _segment_rules(conn: Connection) -> dict[tuple[str, int | None], str]:
    """Each segment's rule by version, and its current rule under version None.

    The current rule stands in for a version ``segment_change`` does not hold
    (versions older than the upgrade that started recording them).
    """
    rules: dict[tuple[str, int | None], str] = {
        (str(s), int(v)): str(r)
        for s, v, r in conn.execute(
            select(SegmentChange.segment_id, SegmentChange.version, SegmentChange.rule)
        )
    }
    for segment, rule in conn.execute(select(SegmentDefinition.segment_id, SegmentDefinition.rule)):
        rules[(str(segment), None)] = str(rule)
    return rules


def _tags_leading_to(conn: Connection, tag: str, vocabulary: Vocabulary) -> dict[str, list[str]]:
    """Return every tag whose value depends on ``tag``, with the chain of tags, for messages.

    ``{"vip": ["vip"], "vip_recent": ["vip_recent", "vip"]}`` when the rule of
    ``vip_recent`` reads ``tag("vip")``.
    """
    rows = conn.execute(
        select(TagRow.name, TagRow.rule).where(TagRow.kind != "manual", TagRow.rule.is_not(None))
    ).all()
    reads = {str(name): _tags_read(str(rule), vocabulary) for name, rule in rows}
    paths = {tag: [tag]}
    grown = True
    while grown:
        grown = False
        for name, read in sorted(reads.items()):
            via = sorted(read & set(paths))
            if name not in paths and via:
                paths[name] = [name, *paths[via[0]]]
                grown = True
    return paths


def _tags_read(rule: str, vocabulary: Vocabulary) -> frozenset[str]:
    try:
        return compile_rule(rule, vocabulary).tags
    except RuleError as exc:
        # A rule that no longer compiles (a tag or field since removed) cannot be
        # evaluated again either; it should not block tagging, but say so.
        log.warning("Cannot tell which tags rule %r reads (%s); not checking it", rule, exc)
        return frozenset()


def _refusal(
    tag: str, at: datetime, on: datetime, segment: str, what: str, path: list[str]
) -> ValidationError:
    reads = f"reads tag {path[0]!r}" + "".join(f", whose rule reads {n!r}" for n in path[1:])
    return ValidationError(
        f"Tag {tag!r} cannot be changed as of {when_text(at)}: segment {segment!r} {reads}, and "
        f"the list of {when_text(on)} ({what}) was built with this tag; a change dated at or "
        "before it would rewrite what that list was built from. Date the change after "
        f"{when_text(on)}, e.g. now."
    )
