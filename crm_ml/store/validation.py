"""What a valid row of each source table looks like: column specs and table rules.

Column specs are derived from :mod:`crm_ml.store.schema` so that the loader and
the database agree: a column is *required* when it is not nullable and has no
default, its kind follows the SQLAlchemy type, allowed values and numeric
ranges are read from the table's CHECK constraints. What a CHECK cannot say
(references between tables, cross-column rules, which timestamps may lie in
the future, which columns are calendar dates, which columns of a ledger arrive
after its row) is declared here as table rules.

Besides the source tables, the loader reads a store's own history as written by
``crm-ml export parquet``: the merge log (``customer_merge``), the profile
audit (``customer_change``) and the erasure marks (``erased_customer``), so that
a store moved through Parquet keeps them. The merge log's rules that need the
store are in :mod:`crm_ml.store.merge_log`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

import pandas as pd
from sqlalchemy import Boolean, CheckConstraint, Column, DateTime, Double, Integer, Table

from crm_ml.errors import ValidationError
from crm_ml.store.postings import LEDGERS, LedgerSpec
from crm_ml.store.schema import SOURCE_TABLES, Base

ColumnKind = Literal["text", "int", "float", "bool", "timestamp", "date"]
TableKind = Literal["dimension", "ledger"]

#: Tables whose rows describe something that can change: a changed row is updated.
DIMENSION_TABLES = frozenset(
    {
        "customer",
        "product",
        "store_location",
        "tier",
        "custom_field",
        "custom_field_value",
        "campaign",
    }
)

#: Columns of a ledger or fact table that by design arrive after its row was first
#: loaded: a refund is recorded on the line it returns, a coupon's redemption when it
#: is used, a campaign response when it comes, an owner assignment's end when it ends.
#: A later import may fill each in once (blank in the store → a value); nothing else of
#: a stored ledger row changes, so a repeated key is still never applied twice.
FILLED_LATER: dict[str, tuple[str, ...]] = {
    "order_item": ("refund_amount", "refunded_at"),
    "coupon": ("redeemed_at", "order_id"),
    "campaign_contact": ("responded", "responded_at", "order_id"),
    "customer_owner": ("valid_to",),
}

#: Timestamps that describe a planned or future moment, so they may lie after ``as_of``.
FUTURE_COLUMNS = frozenset({"expires_at", "valid_to", "start_at", "end_at"})

#: Calendar dates: stored as midnight, never shifted by a time zone (a birthday is a day).
DATE_COLUMNS = frozenset({("customer", "birth_date")})

INT32 = (-(2**31), 2**31 - 1)

#: Tables no source system writes but a moved store brings along: the merge log, the
#: profile audit and the erasure marks that crm_ml itself writes (``crm-ml customers
#: merge``, customer imports, ``crm-ml customers erase``). All are append-only: a row is
#: loaded once and never changed by a later import. Erasure marks name their audit row,
#: so they load after ``customer_change``.
HISTORY_TABLES = ("customer_merge", "customer_change", "erased_customer")

#: Every table ``crm-ml import`` loads: the source tables, then the history tables.
IMPORT_TABLES = (*SOURCE_TABLES, *HISTORY_TABLES)


@dataclass(frozen=True)
class Bound:
    """A numeric limit from a CHECK constraint (``amount >= 0``)."""

    value: float
    inclusive: bool


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a source table as the loader sees it.

    Attributes
    ----------
    name : str
        Column name in the file and the database.
    kind : str
        ``text``, ``int``, ``float``, ``bool``, ``timestamp`` or ``date``.
    required : bool
        A value must be given (not nullable and no default).
    default : object
        Value used for a blank or absent column, or ``None``.
    max_length : int or None
        Longest text the column holds.
    allowed : tuple of str or None
        The only values accepted (matched case-insensitively, stored lower-case).
    lower, upper : Bound or None
        Numeric range.
    future_ok : bool
        A timestamp that may lie after the load's ``as_of``.
    """

    name: str
    kind: ColumnKind
    required: bool
    default: object = None
    max_length: int | None = None
    allowed: tuple[str, ...] | None = None
    lower: Bound | None = None
    upper: Bound | None = None
    future_ok: bool = False


@dataclass(frozen=True)
class Reference:
    """``column`` must name an existing ``target_table.target_column`` (blank is allowed)."""

    column: str
    target_table: str
    target_column: str


#: A row rule returns True where the row breaks it, given the parsed frame.
RowCheck = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class RowRule:
    """A rule across columns of one row (``refund_amount <= amount``)."""

    name: str
    column: str
    needs: tuple[str, ...]
    check: RowCheck
    message: str


@dataclass(frozen=True)
class TableSpec:
    """Everything the loader checks for one source table."""

    name: str
    kind: TableKind
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    unique: tuple[str, ...]
    references: tuple[Reference, ...]
    row_rules: tuple[RowRule, ...]
    filled_later: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnSpec:
        """Return the spec of column ``name``."""
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        """Columns a source must have."""
        return tuple(c.name for c in self.columns if c.required)


def _ref(column: str, table: str, target: str | None = None) -> Reference:
    return Reference(column, table, target or column)


_CUSTOMER = _ref("customer_id", "customer")
_ORDER = _ref("order_id", "orders")
_PRODUCT = _ref("product_id", "product")

#: References the loader enforces (the schema has no database foreign keys).
REFERENCES: dict[str, tuple[Reference, ...]] = {
    "customer": (_ref("merged_into", "customer", "customer_id"),),
    "customer_identity": (_CUSTOMER,),
    "custom_field_value": (_CUSTOMER, _ref("field_id", "custom_field")),
    "customer_owner": (_CUSTOMER,),
    "consent": (_CUSTOMER,),
    "orders": (_CUSTOMER, _ref("store_id", "store_location")),
    "order_item": (_ORDER, _PRODUCT),
    "behavior_event": (_CUSTOMER, _PRODUCT),
    "tier_change": (
        _CUSTOMER,
        _ref("from_tier", "tier", "tier_id"),
        _ref("to_tier", "tier", "tier_id"),
    ),
    "points_ledger": (_CUSTOMER, _ORDER),
    "coupon": (_CUSTOMER, _ORDER, _ref("campaign_id", "campaign")),
    "stored_value_ledger": (_CUSTOMER, _ORDER),
    "campaign_contact": (_ref("campaign_id", "campaign"), _CUSTOMER, _ORDER),
    # A merge names two customers of the store; a profile change, the customer it changed
    # (a merged one too: a later customer import may have changed a merged record).
    "customer_merge": (
        _ref("merged_id", "customer", "customer_id"),
        _ref("surviving_id", "customer", "customer_id"),
    ),
    "customer_change": (_CUSTOMER,),
    # An erasure mark names the erased record and the audit row that says who and why.
    "erased_customer": (_CUSTOMER, _ref("change_id", "customer_change")),
}


def _refund_too_large(f: pd.DataFrame) -> pd.Series:
    return (f["refund_amount"] < 0) | (f["refund_amount"] > f["amount"])


def _sign_rule(ledger: LedgerSpec, name: str) -> RowRule:
    """Refuse an amount whose sign its kind does not allow, by the posting API's own rules.

    A ``spend`` of ``200`` (the kind already says which way) would otherwise add to the
    balance; the message says which sign each kind takes.
    """
    amount = ledger.amount
    verb, their = ("have", "their") if amount.endswith("s") else ("has", "its")
    return RowRule(
        name,
        amount,
        ("kind", amount),
        lambda f: ledger.wrong_sign(f["kind"], f[amount]),
        f"{amount} {{value}} {verb} the wrong sign for {their} kind ({ledger.sign_rules()})",
    )


def _self_merge(f: pd.DataFrame) -> pd.Series:
    return (f["merged_id"] == f["surviving_id"]).fillna(False)


def _before(later: str, earlier: str, *, strict: bool) -> RowCheck:
    def check(f: pd.DataFrame) -> pd.Series:
        broken = f[later] <= f[earlier] if strict else f[later] < f[earlier]
        return broken.fillna(False)

    return check


#: Rules over several columns, keyed by the CHECK constraint they stand for.
ROW_RULES: dict[str, tuple[RowRule, ...]] = {
    "order_item": (
        RowRule(
            "ck_order_item_refund_amount",
            "refund_amount",
            ("refund_amount", "amount"),
            _refund_too_large,
            "refund {value} must be between 0 and the line amount",
        ),
    ),
    "points_ledger": (_sign_rule(LEDGERS["points_ledger"], "ck_points_ledger_sign"),),
    # No CHECK stands for this one (the schema is unchanged): the loader alone enforces it.
    "stored_value_ledger": (_sign_rule(LEDGERS["stored_value_ledger"], "sign"),),
    "coupon": (
        RowRule(
            "ck_coupon_redeemed_at",
            "redeemed_at",
            ("redeemed_at", "issued_at"),
            _before("redeemed_at", "issued_at", strict=False),
            "redeemed_at {value} is before issued_at",
        ),
    ),
    "campaign": (
        RowRule(
            "ck_campaign_dates",
            "end_at",
            ("end_at", "start_at"),
            _before("end_at", "start_at", strict=False),
            "end_at {value} is before start_at",
        ),
    ),
    "customer_merge": (
        RowRule(
            "self_merge",
            "surviving_id",
            ("merged_id", "surviving_id"),
            _self_merge,
            "surviving_id {value} is the merged customer itself: expected the id of another "
            "customer, since a customer cannot be merged into itself",
        ),
    ),
    "customer_owner": (
        RowRule(
            "ck_customer_owner_validity",
            "valid_to",
            ("valid_to", "valid_from"),
            _before("valid_to", "valid_from", strict=True),
            "valid_to {value} is not after valid_from",
        ),
    ),
}

#: Sales columns that a POS return slip (退货单) makes negative. Their lower limit is
#: checked by a row rule whose message says how a return is loaded, since a negative
#: order would otherwise be refused with a bare "out of range".
RETURN_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("gross_amount", "discount_amount", "net_amount"),
    "order_item": ("quantity", "amount"),
}

RETURNS_HINT = (
    "; a return is not loaded as a negative order or line: set refund_amount and "
    "refunded_at on the order_item line it returns (import that line again with "
    "them filled in)"
)


def _below(column: str, bound: Bound) -> RowCheck:
    def check(f: pd.DataFrame) -> pd.Series:
        values = f[column]
        return (values < bound.value if bound.inclusive else values <= bound.value).fillna(False)

    return check


def _return_rule(column: str, bound: Bound) -> RowRule:
    """Check a sales column's lower limit, saying how a return is loaded when it fails."""
    limit = f"{'at least' if bound.inclusive else 'more than'} {bound.value:g}"
    return RowRule(
        "range",
        column,
        (column,),
        _below(column, bound),
        f"{{value}} is out of range: expected {limit}{RETURNS_HINT}",
    )


def _return_rules(table: str, limits: dict[str, dict[str, object]]) -> tuple[RowRule, ...]:
    """Move the lower limits of ``table``'s sales columns out of ``limits`` into row rules."""
    rules = []
    for column in RETURN_COLUMNS.get(table, ()):
        bound = limits.get(column, {}).pop("lower", None)
        if isinstance(bound, Bound):
            rules.append(_return_rule(column, bound))
    return tuple(rules)


_IN = re.compile(r"^(\w+) IN \((.+)\)$")
_BETWEEN = re.compile(r"^(\w+) IS NULL OR \1 BETWEEN (-?[\d.]+) AND (-?[\d.]+)$")
_COMPARE = re.compile(r"^(\w+) (>=|>|<=|<) (-?[\d.]+)$")


def parse_check(sqltext: str) -> dict[str, dict[str, object]] | None:
    """Read a simple CHECK (``x IN (...)``, ``x >= 0``, ``x BETWEEN a AND b``) as column limits.

    Returns
    -------
    dict or None
        ``{column: {"allowed": (...)} | {"lower": Bound, "upper": Bound}}``, or
        ``None`` when the constraint is not of a simple form (then a :data:`ROW_RULES`
        entry must stand for it).
    """
    if match := _IN.match(sqltext):
        values = tuple(v.strip().strip("'") for v in match.group(2).split(","))
        return {match.group(1): {"allowed": values}}
    if match := _BETWEEN.match(sqltext):
        low, high = float(match.group(2)), float(match.group(3))
        return {match.group(1): {"lower": Bound(low, True), "upper": Bound(high, True)}}
    limits: dict[str, dict[str, object]] = {}
    for part in sqltext.split(" AND "):
        compare = _COMPARE.match(part.strip())
        if not compare:
            return None
        column, op, number = compare.groups()
        side = "lower" if op.startswith(">") else "upper"
        limits.setdefault(column, {})[side] = Bound(float(number), op.endswith("="))
    return limits


def _kind(table: str, column: Column[object]) -> ColumnKind:
    if (table, column.name) in DATE_COLUMNS:
        return "date"
    kinds: tuple[tuple[type, ColumnKind], ...] = (
        (Boolean, "bool"),
        (DateTime, "timestamp"),
        (Integer, "int"),
        (Double, "float"),
    )
    return next((kind for sa_type, kind in kinds if isinstance(column.type, sa_type)), "text")


def _column_spec(table: str, column: Column[object], limits: dict[str, object]) -> ColumnSpec:
    kind = _kind(table, column)
    scalar = column.default is not None and column.default.is_scalar
    default = getattr(column.default, "arg", None) if scalar else None
    lower, upper = limits.get("lower"), limits.get("upper")
    if kind == "int":
        lower = lower or Bound(INT32[0], True)
        upper = upper or Bound(INT32[1], True)
    allowed = limits.get("allowed")
    return ColumnSpec(
        name=column.name,
        kind=kind,
        required=not column.nullable and default is None,
        default=default,
        max_length=getattr(column.type, "length", None),
        allowed=allowed if isinstance(allowed, tuple) else None,
        lower=lower if isinstance(lower, Bound) else None,
        upper=upper if isinstance(upper, Bound) else None,
        future_ok=column.name in FUTURE_COLUMNS,
    )


def _check_limits(table: Table) -> dict[str, dict[str, object]]:
    limits: dict[str, dict[str, object]] = {}
    for constraint in table.constraints:
        if isinstance(constraint, CheckConstraint):
            for column, found in (parse_check(str(constraint.sqltext)) or {}).items():
                limits.setdefault(column, {}).update(found)
    return limits


def _declared_limits(name: str) -> dict[str, dict[str, object]]:
    """Limits that no CHECK states: a profile change names a customer column other than its id.

    Customer imports and ``crm-ml customers merge`` audit only those columns (an id
    never changes), so any other ``field`` is a shifted or mislabelled column of the file.
    """
    if name != "customer_change":
        return {}
    customer = Base.metadata.tables["customer"]
    return {"field": {"allowed": tuple(c.name for c in customer.columns if not c.primary_key)}}


@cache
def table_spec(name: str) -> TableSpec:
    """Return the loader's spec for table ``name``, a source or history table.

    Raises
    ------
    ValidationError
        If ``name`` is not one of :data:`IMPORT_TABLES`.
    """
    if name not in IMPORT_TABLES:
        close = difflib.get_close_matches(name, IMPORT_TABLES, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValidationError(
            f"Cannot import into table {name!r}.{hint} Expected one of {', '.join(IMPORT_TABLES)}."
        )
    table = Base.metadata.tables[name]
    limits = _check_limits(table) | _declared_limits(name)
    return_rules = _return_rules(name, limits)
    unique = tuple(c.name for c in table.columns if c.unique)
    return TableSpec(
        name=name,
        kind="dimension" if name in DIMENSION_TABLES else "ledger",
        columns=tuple(_column_spec(name, c, limits.get(c.name, {})) for c in table.columns),
        key=tuple(c.name for c in table.primary_key.columns),
        unique=unique,
        references=REFERENCES.get(name, ()),
        row_rules=return_rules + ROW_RULES.get(name, ()),
        filled_later=FILLED_LATER.get(name, ()),
    )
