"""Tag definitions as data, templates with parameters, and their storage.

A tag's ``name`` is its id in the store (``tag_definition.tag_id`` and
``customer_tag.tag_id``), so it is restricted to lower-case letters, digits
and underscores. Display labels are free text (usually Chinese).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import pandas as pd
from sqlalchemy import Connection, Table, select

from crm_ml.errors import NotFoundError, RuleError, ValidationError
from crm_ml.rules import CATEGORIES, CATEGORY_LABELS, Vocabulary, compile_rule
from crm_ml.rules.vocabulary import nearest
from crm_ml.store.admin import utc_now
from crm_ml.store.connection import Store
from crm_ml.store.schema import TAG_KINDS
from crm_ml.store.schema import TagDefinition as TagRow

log = logging.getLogger(__name__)

_TABLE = cast(Table, TagRow.__table__)

TagKind = Literal["rule", "model", "manual"]
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_name(name: str, what: str = "tag") -> str:
    """Return ``name`` if it is a valid identifier (``[a-z][a-z0-9_]*``, at most 64 characters).

    Raises
    ------
    ValidationError
        Otherwise, with a suggested spelling.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        cleaned = re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_")[:64] or "my_name"
        raise ValidationError(
            f"{what} name {name!r} is not allowed: use lower-case letters, digits and underscores, "
            f"starting with a letter (at most 64). Try {cleaned!r}; put display text in the label."
        )
    return name


@dataclass(frozen=True)
class TagDefinition:
    """A tag: what it means, who owns it, and (for rule and model tags) its rule.

    Attributes
    ----------
    name : str
        Identifier, e.g. ``high_value``.
    label : str
        Display label, e.g. ``高价值客户``.
    category : str or None
        Grouping for lists and portraits, e.g. ``value``, ``lifecycle``.
    kind : {"rule", "model", "manual"}
        ``model`` tags are rules over scores; ``manual`` tags are set by people.
    description, owner : str or None
        What it means and who answers for it.
    rule : str or None
        Required for rule and model tags; none for manual tags.
    version : int
        Bumped by the store each time the rule changes.
    """

    name: str
    label: str
    category: str | None = None
    kind: TagKind = "rule"
    description: str | None = None
    owner: str | None = None
    rule: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.kind not in TAG_KINDS:
            raise ValidationError(
                f"Tag {self.name!r}: kind {self.kind!r} is not one of {TAG_KINDS}."
            )
        if self.kind == "manual" and self.rule:
            raise ValidationError(f"Manual tag {self.name!r} cannot carry a rule; use kind='rule'.")
        if self.kind != "manual" and not self.rule:
            raise ValidationError(
                f"{self.kind.title()} tag {self.name!r} needs a rule, e.g. 'recency_days > 180'."
            )


@dataclass(frozen=True)
class TemplateParam:
    """A template parameter: ``int``, ``float`` (with bounds) or a ``choice`` of values."""

    kind: Literal["int", "float", "choice"]
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` if it fits, else raise :class:`ValidationError`."""
        if self.kind == "choice":
            if value not in self.choices:
                raise ValidationError(
                    f"Parameter {name}={value!r} is not one of "
                    f"{', '.join(self.choices)}.{nearest(str(value), self.choices)}"
                )
            return value
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (self.kind == "int" and not float(value).is_integer()):
            expected = "an int" if self.kind == "int" else "a number"
            raise ValidationError(f"Parameter {name}={value!r} must be {expected}.")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValidationError(
                f"Parameter {name}={value!r} must be within [{self.low}, {self.high}]."
            )
        return int(value) if self.kind == "int" else float(value)


@dataclass(frozen=True)
class TagTemplate:
    """A family of tags with parameters, e.g. ``"bought {category} in the last {days} days"``.

    ``name``, ``label``, ``description`` and ``rule`` are format strings; checked
    parameter values are substituted (``{category_label}`` is the Chinese label
    of a ``category`` parameter), and the resulting rule is checked like any other.
    """

    name: str
    label: str
    rule: str
    params: Mapping[str, TemplateParam]
    category: str | None = None
    kind: TagKind = "rule"
    description: str | None = None

    def instantiate(self, **values: Any) -> TagDefinition:
        """Return the tag for the given parameters (defaults for those not given)."""
        text = template_text(self.name, self.params, values)
        return TagDefinition(
            name=self.name.format(**text),
            label=self.label.format(**text),
            category=self.category,
            kind=self.kind,
            rule=self.rule.format(**text),
            description=(self.description or "").format(**text) or None,
        )


def template_text(
    template: str, params: Mapping[str, TemplateParam], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Check a template's parameter values (defaults for those not given) as format arguments.

    Numbers are written short (``0.6``, ``30``); a ``category`` also gives its
    Chinese ``category_label``.
    """
    unknown = set(values) - set(params)
    if unknown:
        raise ValidationError(
            f"Template {template!r} has no parameter(s) {sorted(unknown)}; "
            f"it takes {sorted(params)}."
        )
    bound = {k: p.check(k, values.get(k, p.default)) for k, p in params.items()}
    if "category" in bound:
        bound["category_label"] = CATEGORY_LABELS.get(bound["category"], bound["category"])
    return {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in bound.items()}


def category_param(default: str = "maternity_baby") -> TemplateParam:
    """Return a parameter that chooses one of the product categories."""
    return TemplateParam("choice", default, choices=CATEGORIES)


# --------------------------------------------------------------------------- storage


def _row_to_definition(row: Any) -> TagDefinition:
    return TagDefinition(
        name=row.name,
        label=row.label,
        category=row.category,
        kind=row.kind,
        description=row.description,
        owner=row.owner,
        rule=row.rule,
        version=int(row.version),
    )


def stored_tag_names(conn: Connection) -> set[str]:
    """Names of every tag defined in the store."""
    return set(conn.execute(select(TagRow.name)).scalars())


def _defined_only(names: Iterable[str], defined: Iterable[str]) -> list[str]:
    """Return ``names`` without repeats, in order, if each is in ``defined``.

    Raises
    ------
    NotFoundError
        For the first name that is not, with the nearest defined names.
    """
    wanted, known = list(dict.fromkeys(names)), set(defined)
    for name in wanted:
        if name not in known:
            raise NotFoundError(
                f"No tag named {name!r} is defined.{nearest(name, known)} List tags with "
                "`crm-ml tags list` (crm_ml.tags.tag_definitions_frame(store) in Python)."
            )
    return wanted


def require_tags(conn: Connection, names: Iterable[str]) -> list[str]:
    """Return ``names`` without repeats, in order, if every one is a defined tag.

    Queries by tag name call this first, so a typo raises instead of
    returning nobody (which reads as "nobody has the tag").

    Raises
    ------
    NotFoundError
        For the first unknown name, with the nearest defined names.
    """
    return _defined_only(names, stored_tag_names(conn))


def load_tag_definitions(store: Store, names: Iterable[str] | None = None) -> list[TagDefinition]:
    """Return the stored tag definitions (all, or those named), sorted by name.

    Raises
    ------
    NotFoundError
        If a named tag is not defined, with the nearest names.
    """
    with store.connect() as conn:
        rows = conn.execute(select(TagRow).order_by(TagRow.name)).all()
    found = {row.name: _row_to_definition(row) for row in rows}
    if names is None:
        return list(found.values())
    return [found[name] for name in _defined_only(names, found)]


def get_tag_definition(store: Store, name: str) -> TagDefinition:
    """Return one stored tag definition (see :func:`load_tag_definitions`)."""
    return load_tag_definitions(store, [name])[0]


def tag_definitions_frame(store: Store) -> pd.DataFrame:
    """Return every stored tag definition.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``name``; columns ``label, category, kind, version, owner, rule, description``.
    """
    columns = ["name", "label", "category", "kind", "version", "owner", "rule", "description"]
    records = [{c: getattr(d, c) for c in columns} for d in load_tag_definitions(store)]
    return pd.DataFrame(records, columns=columns).set_index("name")


def tag_vocabulary(
    store: Store, features: pd.DataFrame | None = None, extra_tags: Iterable[str] = ()
) -> Vocabulary:
    """Return what rules may name: built-in and catalogued features, scores, stored tags.

    Parameters
    ----------
    store : Store
        Read for the names of defined tags.
    features : pandas.DataFrame, optional
        Its columns are added as fields (their types taken from the dtypes).
    extra_tags : iterable of str
        Tags being defined together with the rule.
    """
    vocab = _with_feature_catalog(Vocabulary())
    if features is not None:
        vocab = vocab.with_frame(features)
    with store.connect() as conn:
        names = stored_tag_names(conn)
    return vocab.with_tags(names | set(extra_tags))


def _with_feature_catalog(vocab: Vocabulary) -> Vocabulary:
    # The features package owns the catalog; until it is importable the built-in list stands.
    try:
        from crm_ml.features import catalog

        return vocab.with_catalog(catalog())
    except (ImportError, AttributeError, KeyError, TypeError) as exc:
        log.debug("Features catalog unavailable (%s); using the built-in feature list", exc)
        return vocab


def save_tag_definitions(
    store: Store, definitions: Iterable[TagDefinition], *, vocabulary: Vocabulary | None = None
) -> list[TagDefinition]:
    """Check and store tag definitions, bumping ``version`` when a rule changes.

    A rule that names an unknown field or tag, mixes types or uses an operator
    that is not allowed is rejected here, and nothing is written.

    Returns
    -------
    list of TagDefinition
        As stored (with their versions).

    Raises
    ------
    RuleError
        For a bad rule, or a tag whose rule names itself.
    """
    batch = list(definitions)
    vocab = vocabulary or tag_vocabulary(store)
    vocab = vocab.with_tags(d.name for d in batch)
    for definition in batch:
        if definition.rule:
            rule = compile_rule(definition.rule, vocab)
            if definition.name in rule.tags:
                raise RuleError(
                    f"Tag {definition.name!r} cannot use tag({definition.name!r}) in its own rule."
                )
    with store.begin() as conn:
        return [_upsert(conn, d) for d in batch]


def save_tag_definition(
    store: Store, definition: TagDefinition, *, vocabulary: Vocabulary | None = None
) -> TagDefinition:
    """Check and store one tag definition (see :func:`save_tag_definitions`)."""
    return save_tag_definitions(store, [definition], vocabulary=vocabulary)[0]


def _stored_definition(store: Store, name: str) -> TagDefinition | None:
    with store.connect() as conn:
        row = conn.execute(select(TagRow).where(TagRow.name == name)).first()
    return None if row is None else _row_to_definition(row)


def _check_free_for_manual(name: str, stored: TagDefinition | None) -> None:
    """Refuse a manual tag under the name of a rule or model tag, stored or built in."""
    from crm_ml.tags.library import builtin_tags  # the library is built from this module

    # `tags apply` installs the built-in library, which would turn the tag into a rule tag.
    other = stored or next((d for d in builtin_tags() if d.name == name), None)
    if other is not None and other.kind != "manual":
        raise ValidationError(
            f"Tag {name!r} is a {other.kind} tag ({other.label}), set by `crm-ml tags apply` from "
            "its rule: expected a name no rule or model tag has. Choose another name for the "
            f"manual tag, e.g. {name[:57] + '_manual'!r}."
        )


def define_manual_tag(
    store: Store, name: str, *, label: str, description: str | None = None
) -> tuple[TagDefinition, bool]:
    """Define (or relabel) a manual tag, one that people give with ``crm-ml tags add``.

    Defining an existing manual tag again replaces its label (and its description,
    when one is given); its category, owner and members stay.

    Returns
    -------
    tuple of (TagDefinition, bool)
        The tag as stored, and whether it is new.

    Raises
    ------
    ValidationError
        For a name that is not an identifier, a blank label, or the name of a
        rule or model tag (stored or built in).
    """
    label, description = label.strip(), (description or "").strip() or None
    if not label:
        raise ValidationError(
            f"Tag {name!r} needs a label, the text people see in lists, e.g. --label '请勿联系'."
        )
    stored = _stored_definition(store, check_name(name))
    _check_free_for_manual(name, stored)
    base = stored or TagDefinition(name, label, kind="manual")
    definition = replace(base, label=label, description=description or base.description)
    return save_tag_definition(store, definition), stored is None


def _upsert(conn: Connection, definition: TagDefinition) -> TagDefinition:
    table = _TABLE
    current = conn.execute(select(TagRow).where(TagRow.name == definition.name)).first()
    values = {
        k: getattr(definition, k)
        for k in ("label", "category", "kind", "description", "owner", "rule")
    }
    if current is None:
        conn.execute(
            table.insert().values(
                tag_id=definition.name,
                name=definition.name,
                version=1,
                created_at=utc_now(),
                **values,
            )
        )
        return replace(definition, version=1)
    version = int(current.version)
    if (current.rule, current.kind) != (definition.rule, definition.kind):
        version += 1
        log.info("Tag %s: rule changed, version %d", definition.name, version)
    conn.execute(
        table.update().where(table.c.tag_id == current.tag_id).values(version=version, **values)
    )
    return replace(definition, version=version)


__all__ = [
    "TagDefinition",
    "TagTemplate",
    "TemplateParam",
    "category_param",
    "check_name",
    "define_manual_tag",
    "get_tag_definition",
    "load_tag_definitions",
    "require_tags",
    "save_tag_definition",
    "save_tag_definitions",
    "tag_definitions_frame",
    "tag_vocabulary",
]
