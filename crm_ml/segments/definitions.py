"""Segment (audience) definitions: a rule over features, tags and scores, and templates.

A segment's ``name`` is its id in the store. ``dynamic`` segments are
re-evaluated at each snapshot date; ``static`` segments keep the members of
their first snapshot (a fixed list, e.g. a campaign's audience).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast

import pandas as pd
from sqlalchemy import Connection, Table, func, insert, select

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.rules import Rule, Vocabulary, compile_rule
from crm_ml.rules.vocabulary import nearest
from crm_ml.store.admin import check_store, utc_now
from crm_ml.store.connection import Store
from crm_ml.store.schema import SegmentChange
from crm_ml.store.schema import SegmentDefinition as SegmentRow
from crm_ml.tags.definitions import (
    TemplateParam,
    category_param,
    check_name,
    tag_vocabulary,
    template_text,
)

log = logging.getLogger(__name__)

_TABLE = cast(Table, SegmentRow.__table__)
SegmentKind = Literal["static", "dynamic"]


@dataclass(frozen=True)
class Segment:
    """An audience.

    Attributes
    ----------
    name : str
        Identifier, e.g. ``vip_winback``.
    rule : str
        Over features, scores, ``tag("...")`` and ``consent("...", "...")``.
    label : str or None
        Display label, e.g. ``高价值流失挽回``.
    kind : {"dynamic", "static"}
    version : int
        Bumped by the store each time the rule changes.
    created_by : str or None
    """

    name: str
    rule: str
    label: str | None = None
    kind: SegmentKind = "dynamic"
    version: int = 1
    created_by: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "segment")
        if self.kind not in ("static", "dynamic"):
            raise ValidationError(
                f"Segment {self.name!r}: kind {self.kind!r} is not 'dynamic' or 'static'."
            )


@dataclass(frozen=True)
class SegmentTemplate:
    """A parametrised segment; ``name``, ``label`` and ``rule`` are format strings."""

    name: str
    label: str
    rule: str
    params: dict[str, TemplateParam]

    def instantiate(self, **values: Any) -> Segment:
        """Return the segment for the given parameters (defaults for those not given)."""
        text = template_text(self.name, self.params, values)
        return Segment(
            self.name.format(**text), self.rule.format(**text), self.label.format(**text)
        )


#: Ready-made audiences for retention and marketing teams.
SEGMENT_TEMPLATES: dict[str, SegmentTemplate] = {
    "churn_winback": SegmentTemplate(
        "churn_winback",
        "流失挽回",
        # Someone who bought last week is not lapsing, whatever the score says: win back
        # those who have stayed away a while.
        "p_churn >= {p_churn} and revenue_365d >= {min_revenue} and recency_days > {min_days}",
        {
            "p_churn": TemplateParam("float", 0.6, 0, 1),
            "min_revenue": TemplateParam("float", 1000.0, 0, 1e12),
            "min_days": TemplateParam("int", 30, 0, 3650),
        },
    ),
    "high_value_at_risk": SegmentTemplate(
        "high_value_at_risk",
        "高价值流失预警",
        'tag("high_value") and p_churn >= {p_churn}',
        {"p_churn": TemplateParam("float", 0.5, 0, 1)},
    ),
    "category_prospects": SegmentTemplate(
        "{category}_prospects",
        "{category_label}潜在购买",
        "affinity_{category} >= {min_share} and p_purchase >= {p_purchase}",
        {
            "category": category_param(),
            "min_share": TemplateParam("float", 0.2, 0, 1),
            "p_purchase": TemplateParam("float", 0.4, 0, 1),
        },
    ),
    "points_reminder": SegmentTemplate(
        "points_reminder",
        "积分到期提醒",
        "points_expiring_30d >= {min_points}",
        {"min_points": TemplateParam("int", 100, 1, 10**9)},
    ),
    "reactivation": SegmentTemplate(
        "reactivation",
        "沉睡唤醒",
        "orders_lifetime >= 2 and recency_days > {days}",
        {"days": TemplateParam("int", 180, 1, 3650)},
    ),
}


def segment_vocabulary(store: Store, features: pd.DataFrame | None = None) -> Vocabulary:
    """Return what a segment rule may name (features, scores and every stored tag)."""
    return tag_vocabulary(store, features)


def check_segment_rule(
    store: Store, segment: Segment, vocabulary: Vocabulary | None = None
) -> Rule:
    """Compile a segment's rule, raising :class:`~crm_ml.errors.RuleError` if it is bad."""
    return compile_rule(segment.rule, vocabulary or segment_vocabulary(store))


def save_segment(
    store: Store, segment: Segment, *, actor: str, vocabulary: Vocabulary | None = None
) -> Segment:
    """Check and store a segment, bumping its version when the rule or kind changes.

    Returns
    -------
    Segment
        As stored.

    Raises
    ------
    RuleError
        If the rule names an unknown field or tag, mixes types, or is not allowed;
        nothing is written.
    """
    check_segment_rule(store, segment, vocabulary)
    with store.begin() as conn:
        check_store(conn)
        return _upsert(conn, segment, actor)


def _upsert(conn: Connection, segment: Segment, actor: str) -> Segment:
    current = conn.execute(select(SegmentRow).where(SegmentRow.name == segment.name)).first()
    values = {"label": segment.label, "rule": segment.rule, "kind": segment.kind}
    now = utc_now()
    if current is None:
        conn.execute(
            _TABLE.insert().values(
                segment_id=segment.name,
                name=segment.name,
                version=1,
                created_at=now,
                created_by=actor,
                **values,
            )
        )
        _record_change(conn, segment.name, "created", actor, now, version=1, **values)
        return replace(segment, version=1, created_by=actor)
    changed = [field for field in values if getattr(current, field) != values[field]]
    version = int(current.version) + bool(set(changed) - {"label"})  # a label keeps the version
    if changed:
        _record_change(
            conn, current.segment_id, ", ".join(changed), actor, now, version=version, **values
        )
        log.info(
            "Segment %s changed by %s (%s): v%d -> v%d",
            segment.name, actor, ", ".join(changed), int(current.version), version,
        )  # fmt: skip
    conn.execute(
        _TABLE.update()
        .where(_TABLE.c.segment_id == current.segment_id)
        .values(version=version, **values)
    )
    return replace(segment, version=version, created_by=current.created_by)


def _record_change(
    conn: Connection, segment_id: str, change: str, actor: str, at: datetime, **definition: Any
) -> None:
    last = conn.execute(
        select(func.max(SegmentChange.revision)).where(SegmentChange.segment_id == segment_id)
    ).scalar_one()
    conn.execute(
        insert(SegmentChange).values(
            segment_id=segment_id,
            revision=(last or 0) + 1,
            changed_at=at,
            changed_by=actor,
            change=change,
            **definition,
        )
    )


def segment_history(store: Store, name: str) -> pd.DataFrame:
    """Return every recorded change of a segment, oldest first.

    Returns
    -------
    pandas.DataFrame
        Columns ``revision, changed_at, changed_by, change, version, kind, label,
        rule``: who changed what, and the definition each change left.

    Raises
    ------
    NotFoundError
        If there is no segment by that name, with the nearest names.
    """
    columns = ["revision", "changed_at", "changed_by", "change", "version", "kind", "label", "rule"]
    with store.connect() as conn:
        check_store(conn)
        require_segments(conn, [name])
        rows = conn.execute(
            select(*(getattr(SegmentChange, c) for c in columns))
            .where(SegmentChange.segment_id == name)
            .order_by(SegmentChange.revision)
        ).all()
    return pd.DataFrame(rows, columns=columns)


def _no_such_segment(name: str, names: Iterable[str]) -> NotFoundError:
    return NotFoundError(
        f"No segment named {name!r}.{nearest(name, names)} List them with "
        "`crm-ml segment list` (segment_definitions_frame(store) in Python); create one with "
        "`crm-ml segment create` (save_segment)."
    )


def load_segment(store: Store, name: str) -> Segment:
    """Return a stored segment.

    Raises
    ------
    NotFoundError
        If there is none by that name, with the nearest names.
    """
    with store.connect() as conn:
        row = conn.execute(select(SegmentRow).where(SegmentRow.name == name)).first()
        names = [] if row else list(conn.execute(select(SegmentRow.name)).scalars())
    if row is None:
        raise _no_such_segment(name, names)
    return Segment(row.name, row.rule, row.label, row.kind, int(row.version), row.created_by)


def require_segments(conn: Connection, names: Iterable[str]) -> list[str]:
    """Return ``names`` without repeats, in order, if every one is a stored segment.

    Queries by segment name call this first, so a typo raises instead of
    returning nothing (which reads as "the segment is empty").

    Raises
    ------
    NotFoundError
        For the first unknown name, with the nearest stored names.
    """
    wanted = list(dict.fromkeys(names))
    stored = set(conn.execute(select(SegmentRow.name)).scalars())
    for name in wanted:
        if name not in stored:
            raise _no_such_segment(name, stored)
    return wanted


def segment_definitions_frame(store: Store) -> pd.DataFrame:
    """Return every stored segment.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``name``; columns ``label, kind, version, rule, created_by, created_at``.
    """
    columns = ["name", "label", "kind", "version", "rule", "created_by", "created_at"]
    with store.connect() as conn:
        rows = conn.execute(
            select(*(getattr(SegmentRow, c) for c in columns)).order_by(SegmentRow.name)
        ).all()
    return pd.DataFrame(rows, columns=columns).set_index("name")


def _planned(store: Store, names: Sequence[str]) -> list[tuple[str, Segment | None]]:
    """Return ``(stored name, template segment to save first or None)`` per name, no repeats."""
    saved = set(segment_definitions_frame(store).index)
    planned: dict[str, Segment | None] = {}
    for name in names:
        if name in saved:
            planned.setdefault(name, None)
        elif name in SEGMENT_TEMPLATES:
            segment = SEGMENT_TEMPLATES[name].instantiate()
            planned.setdefault(segment.name, None if segment.name in saved else segment)
        else:
            hint = nearest(name, {*saved, *SEGMENT_TEMPLATES})
            raise NotFoundError(
                f"No segment or template named {name!r}.{hint} "
                f"Saved: {', '.join(sorted(saved)) or 'none'}; templates: {_template_names()}."
            )
    return list(planned.items())


def _template_names() -> str:
    """Template names, with the segment name a template saves under when it differs."""
    shown = []
    for name, template in sorted(SEGMENT_TEMPLATES.items()):
        saved_as = template.instantiate().name
        shown.append(name if saved_as == name else f"{name} (saved as {saved_as})")
    return ", ".join(shown)


def check_segment_names(store: Store, names: Sequence[str]) -> list[str]:
    """Return the stored segment names ``names`` stand for, checking them without writing.

    A saved segment stands for itself. A template stands for the segment its
    defaults are saved as, which may have another name:
    ``category_prospects`` is saved as ``maternity_baby_prospects``. Call it
    before a run writes anything, then use the names it returns.

    Returns
    -------
    list of str
        One name per distinct segment, in the order given.

    Raises
    ------
    NotFoundError
        If a name is neither a saved segment nor a template.
    """
    return [name for name, _ in _planned(store, names)]


def ensure_segments(store: Store, names: Sequence[str], *, actor: str) -> list[Segment]:
    """Return the named segments, saving any that exist only as a template from its defaults.

    Every name is checked before anything is saved. A template's segment keeps
    the template's name pattern (see :func:`check_segment_names`); read the
    names from the returned segments. A template whose segment is already
    saved returns the saved one, unchanged.

    Raises
    ------
    NotFoundError
        If a name is neither a saved segment nor a template; nothing is saved.
    """
    return [
        load_segment(store, name)
        if template is None
        else save_segment(store, template, actor=actor)
        for name, template in _planned(store, names)
    ]
