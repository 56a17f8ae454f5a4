"""The customer/loyalty store's tables.

One declarative schema that behaves the same on DuckDB, SQLite and PostgreSQL
(see ``notes/ENGINES.md`` for why each rule below exists):

- identifiers are text, so ``000123`` stays ``000123``;
- timestamps are naive UTC (:class:`sqlalchemy.DateTime` without a zone);
- money and ratios are ``Double``, never ``Float`` (DuckDB makes ``Float`` 4 bytes);
- primary keys are natural or explicit text ids: DuckDB rejects the
  ``BIGSERIAL`` that an autoincrement integer key would become;
- referential integrity is enforced by the loaders, which can name the file,
  line and column of an orphan row, rather than by database foreign keys,
  which DuckDB enforces in ways that block re-keying a merged customer's history.

Tables are grouped by domain: customer, behaviour, assets, operations, and the
workbench's own outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Bump when a table or column changes, and add the step that upgrades older stores
#: in :mod:`crm_ml.store.migrations`. Stores record every version they have had.
SCHEMA_VERSION = 5

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHANNELS = ("store", "app", "mini_program", "web", "referral")
#: Product categories behind the ``affinity_*`` / ``days_since_*`` features and the
#: ``likes_*`` tags (``product.category`` may hold others; no feature reads them).
MAJOR_CATEGORIES = ("maternity_baby", "beauty", "food", "apparel", "electronics", "home")
CONSENT_CHANNELS = ("sms", "email", "wechat", "phone", "app_push")
CONSENT_PURPOSES = ("marketing", "service", "research")
CONSENT_STATUSES = ("granted", "withdrawn", "unknown")
#: Consent statuses ranked from the most protective of the customer (0) to the least.
#: Two decisions made at the same instant cannot be ordered in time, so the more
#: protective one wins: withdrawn, then unknown, then granted. The one rule for the
#: rules and lists (:func:`crm_ml.rules.consent_status_at`), the customer 360 view and
#: re-keying a merged customer (:mod:`crm_ml.store.rekey`); the features' ``consent_*``
#: flags read a grant tied with any other decision as no grant, which agrees with it.
CONSENT_PROTECTION: Mapping[str, int] = MappingProxyType(
    {"withdrawn": 0, "unknown": 1, "granted": 2}
)
IDENTITY_KINDS = ("phone", "email", "wechat", "member_card")
ORDER_CHANNELS = ("online", "offline")
EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "feedback",
    "complaint",
)
POINTS_KINDS = ("earn", "redeem", "expire", "adjust")
STORED_VALUE_KINDS = ("top_up", "spend", "refund", "adjust")
TIER_DIRECTIONS = ("initial", "up", "down")
CONTACT_GROUPS = ("treatment", "control")
TAG_KINDS = ("rule", "model", "manual")
TAG_SOURCES = ("rule", "model", "manual", "batch")
EXPORT_WRITTEN = "written"  # export_log.status while the file is where ``path`` says
#: export_log.status from when an export is logged until its files are all in place:
#: a row that keeps it belongs to an export that was killed while writing them.
EXPORT_WRITING = "writing (if this stays, the export was interrupted while writing its files)"

ID = String(64)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


class Base(DeclarativeBase):
    """Declarative base carrying the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --------------------------------------------------------------------------- meta


class SchemaInfo(Base):
    """The schema versions a store has had: one row when created, one per upgrade."""

    __tablename__ = "schema_info"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    crm_ml_version: Mapped[str] = mapped_column(String(32))


class LoadBatch(Base):
    """Audit of every import: which file, how many rows were applied and rejected."""

    __tablename__ = "load_batch"
    batch_id: Mapped[str] = mapped_column(ID, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(DateTime)
    rows_read: Mapped[int] = mapped_column(Integer)
    rows_inserted: Mapped[int] = mapped_column(Integer)
    rows_updated: Mapped[int] = mapped_column(Integer)
    rows_unchanged: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)


# --------------------------------------------------------------------------- customer domain


class Customer(Base):
    """A person known to the retailer; members have joined the loyalty programme."""

    __tablename__ = "customer"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(16))
    birth_date: Mapped[datetime | None] = mapped_column(DateTime)
    city: Mapped[str | None] = mapped_column(Text)
    city_tier: Mapped[int | None] = mapped_column(Integer)
    acquisition_channel: Mapped[str | None] = mapped_column(String(32))
    is_member: Mapped[bool] = mapped_column(Boolean, default=False)
    member_since: Mapped[datetime | None] = mapped_column(DateTime)
    #: ``active`` or ``merged`` (then ``merged_into`` names the surviving customer).
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (
        CheckConstraint("city_tier IS NULL OR city_tier BETWEEN 1 AND 6", name="city_tier"),
        _one_of("status", ("active", "merged"), "status"),
    )


class CustomerIdentity(Base):
    """An identifier used to recognise a person: phone, email, WeChat id, member card.

    ``value`` is normalised on load (phones as ``+86…``, emails lower-case).
    """

    __tablename__ = "customer_identity"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), primary_key=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (
        _one_of("kind", IDENTITY_KINDS, "kind"),
        Index("ix_customer_identity_kind_value", "kind", "value"),
    )


class CustomField(Base):
    """A retailer-defined profile item (e.g. 宝宝生日, skin type)."""

    __tablename__ = "custom_field"
    field_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(Text)
    data_type: Mapped[str] = mapped_column(String(16))
    __table_args__ = (_one_of("data_type", ("text", "number", "date", "bool"), "data_type"),)


class CustomFieldValue(Base):
    """A customer's value of a custom field, kept as text and typed by the field."""

    __tablename__ = "custom_field_value"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    field_id: Mapped[str] = mapped_column(ID, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CustomerChange(Base):
    """Audit of profile changes: one row per changed field."""

    __tablename__ = "customer_change"
    change_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str | None] = mapped_column(String(128))


class CustomerOwner(Base):
    """Assignment of a customer to an account manager, valid over ``[valid_from, valid_to)``.

    ``valid_to`` arrives when the assignment ends: a re-import fills it in once.
    """

    __tablename__ = "customer_owner"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ID)
    owner_name: Mapped[str | None] = mapped_column(Text)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
    )


class Consent(Base):
    """A consent decision for one channel and purpose, as of ``updated_at``.

    The latest row at a date is the customer's state then; no row, or
    ``unknown``, means no consent.
    """

    __tablename__ = "consent"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (
        _one_of("channel", CONSENT_CHANNELS, "channel"),
        _one_of("purpose", CONSENT_PURPOSES, "purpose"),
        _one_of("status", CONSENT_STATUSES, "status"),
    )


class CustomerMerge(Base):
    """A duplicate record merged into a surviving customer."""

    __tablename__ = "customer_merge"
    merged_id: Mapped[str] = mapped_column(ID, primary_key=True)
    surviving_id: Mapped[str] = mapped_column(ID, index=True)
    merged_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))


class ErasedCustomer(Base):
    """A customer record erased on request: left out of everything computed about people.

    Written by :func:`crm_ml.erasure.erase_customer` for every record of the person,
    beside its audit row in ``customer_change`` (``change_id``, which says who and why).
    The id stays in ``customer`` with its orders and points, for accounting; this mark
    keeps it out of scores, tags and segment snapshots, and makes imports skip the
    rows that would put back what the erasure removed (:mod:`crm_ml.store.erased`).
    """

    __tablename__ = "erased_customer"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime)
    change_id: Mapped[str] = mapped_column(ID)


# --------------------------------------------------------------------------- behaviour domain


class Product(Base):
    """A sellable product and its category.

    The import stores common Chinese names of the affinity categories as their
    codes (美妆 → ``beauty``); other categories are kept as given, with a warning.
    """

    __tablename__ = "product"
    product_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str | None] = mapped_column(Text)
    list_price: Mapped[float | None] = mapped_column(Double)


class StoreLocation(Base):
    """A physical store."""

    __tablename__ = "store_location"
    store_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    city_tier: Mapped[int | None] = mapped_column(Integer)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        CheckConstraint("city_tier IS NULL OR city_tier BETWEEN 1 AND 6", name="city_tier"),
    )


class Order(Base):
    """A purchase. Amounts are in the store's currency; ``net_amount`` is what was paid."""

    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    ordered_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[str | None] = mapped_column(ID)
    gross_amount: Mapped[float] = mapped_column(Double)
    discount_amount: Mapped[float] = mapped_column(Double, default=0.0)
    net_amount: Mapped[float] = mapped_column(Double)
    __table_args__ = (
        _one_of("channel", ORDER_CHANNELS, "channel"),
        CheckConstraint("gross_amount >= 0", name="gross_amount"),
        CheckConstraint("discount_amount >= 0", name="discount_amount"),
        CheckConstraint("net_amount >= 0", name="net_amount"),
    )


class OrderItem(Base):
    """A line of an order; a refund is recorded on the line it returns.

    ``refund_amount`` and ``refunded_at`` may arrive after the line: a re-import
    fills them in once (see :data:`crm_ml.store.validation.FILLED_LATER`). A
    return is never a negative order or line.
    """

    __tablename__ = "order_item"
    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    product_id: Mapped[str] = mapped_column(ID, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float] = mapped_column(Double)
    discount_amount: Mapped[float] = mapped_column(Double, default=0.0)
    refund_amount: Mapped[float] = mapped_column(Double, default=0.0)
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("refund_amount >= 0 AND refund_amount <= amount", name="refund_amount"),
    )


class BehaviorEvent(Base):
    """A tracked interaction: views, searches, cart adds, feedback and complaints."""

    __tablename__ = "behavior_event"
    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    channel: Mapped[str | None] = mapped_column(String(32))
    touchpoint: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(ID)
    detail: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (_one_of("event_type", EVENT_TYPES, "event_type"),)


# --------------------------------------------------------------------------- asset domain


class PointsLedger(Base):
    """Append-only points postings; a customer's balance is the sum of ``points``.

    ``entry_id`` is the idempotency key: posting the same key twice credits once.
    """

    __tablename__ = "points_ledger"
    entry_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    posted_at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str | None] = mapped_column(ID)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        _one_of("kind", POINTS_KINDS, "kind"),
        CheckConstraint(
            "(kind = 'earn' AND points > 0) OR (kind IN ('redeem', 'expire') AND points < 0)"
            " OR kind = 'adjust'",
            name="sign",
        ),
    )


class Tier(Base):
    """A loyalty tier and the rolling 12-month spend that qualifies for it."""

    __tablename__ = "tier"
    tier_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer, unique=True)
    min_spend_12m: Mapped[float] = mapped_column(Double)
    __table_args__ = (CheckConstraint("min_spend_12m >= 0", name="min_spend_12m"),)


class TierChange(Base):
    """A customer's move between tiers."""

    __tablename__ = "tier_change"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    from_tier: Mapped[str | None] = mapped_column(ID)
    to_tier: Mapped[str] = mapped_column(ID)
    direction: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (_one_of("direction", TIER_DIRECTIONS, "direction"),)


class Coupon(Base):
    """A coupon issued to a customer, and its redemption if it was used.

    ``redeemed_at`` and ``order_id`` arrive when the coupon is used: a re-import
    fills them in once.
    """

    __tablename__ = "coupon"
    coupon_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    campaign_id: Mapped[str | None] = mapped_column(ID)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    face_value: Mapped[float] = mapped_column(Double)
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime)
    order_id: Mapped[str | None] = mapped_column(ID)
    __table_args__ = (
        CheckConstraint("face_value >= 0", name="face_value"),
        CheckConstraint("redeemed_at IS NULL OR redeemed_at >= issued_at", name="redeemed_at"),
    )


class StoredValueLedger(Base):
    """Append-only stored-value (prepaid card) postings; balance is the sum of ``amount``."""

    __tablename__ = "stored_value_ledger"
    entry_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    posted_at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[float] = mapped_column(Double)
    order_id: Mapped[str | None] = mapped_column(ID)
    __table_args__ = (_one_of("kind", STORED_VALUE_KINDS, "kind"),)


# --------------------------------------------------------------------------- operation domain


class Campaign(Base):
    """An operation plan: who it targets, through which channel, with what control share."""

    __tablename__ = "campaign"
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16), default="marketing")
    segment_id: Mapped[str | None] = mapped_column(ID)
    start_at: Mapped[datetime] = mapped_column(DateTime)
    end_at: Mapped[datetime] = mapped_column(DateTime)
    control_share: Mapped[float] = mapped_column(Double, default=0.0)
    __table_args__ = (
        CheckConstraint("control_share >= 0 AND control_share < 1", name="control_share"),
        CheckConstraint("end_at >= start_at", name="dates"),
    )


class CampaignContact(Base):
    """A customer drawn into a campaign, in the treatment or the control group.

    The response (``responded``, ``responded_at``, ``order_id``) arrives later: a
    re-import fills it in once.
    """

    __tablename__ = "campaign_contact"
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    group: Mapped[str] = mapped_column("contact_group", String(16))
    contacted_at: Mapped[datetime] = mapped_column(DateTime)
    responded: Mapped[bool] = mapped_column(Boolean, default=False)
    responded_at: Mapped[datetime | None] = mapped_column(DateTime)
    order_id: Mapped[str | None] = mapped_column(ID)
    __table_args__ = (_one_of("contact_group", CONTACT_GROUPS, "contact_group"),)


# --------------------------------------------------------------------------- workbench outputs


class TagDefinition(Base):
    """A tag: a rule, a model threshold, or a manual label."""

    __tablename__ = "tag_definition"
    tag_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128))
    rule: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (_one_of("kind", TAG_KINDS, "kind"),)


class CustomerTag(Base):
    """A customer's membership of a tag over ``[valid_from, valid_to)``.

    The membership is still open while ``valid_to`` is null.
    """

    __tablename__ = "customer_tag"
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tag_id: Mapped[str] = mapped_column(ID, primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (_one_of("source", TAG_SOURCES, "source"),)


class SegmentDefinition(Base):
    """An audience: a rule over features, tags and scores."""

    __tablename__ = "segment_definition"
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="dynamic")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str | None] = mapped_column(String(128))
    __table_args__ = (_one_of("kind", ("static", "dynamic"), "kind"),)


class SegmentChange(Base):
    """Every save that changed a segment: who, when, what, and the definition it left.

    ``revision`` counts saves per segment; ``version`` is the rule version, which
    a label-only change does not bump.
    """

    __tablename__ = "segment_change"
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    changed_by: Mapped[str] = mapped_column(String(128))
    #: e.g. ``created``, ``rule, label``, or what an upgrade found.
    change: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(Text)


class SegmentSnapshot(Base):
    """That a segment was evaluated as of a date, with which rule version and how many members.

    Recorded even when the segment is empty, so "no members" and "never
    evaluated" are told apart.
    """

    __tablename__ = "segment_snapshot"
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    rule_version: Mapped[int] = mapped_column(Integer)
    members: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(DateTime)


class SegmentMember(Base):
    """A segment's members as of a date."""

    __tablename__ = "segment_member"
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)


class Score(Base):
    """A model's score for a customer as of a date, with its band and plain-language reasons."""

    __tablename__ = "score"
    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(32))
    probability: Mapped[float] = mapped_column(Double)
    band: Mapped[str] = mapped_column(String(16))
    #: JSON list of ``{"feature", "text", "actionable": bool, "direction": "raises" |
    #: "lowers", "contribution": float}`` (rows written before directions: no direction).
    reasons: Mapped[str | None] = mapped_column(Text)
    scored_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (CheckConstraint("probability >= 0 AND probability <= 1", name="probability"),)


class ExportLog(Base):
    """Audit of every list export."""

    __tablename__ = "export_log"
    export_id: Mapped[str] = mapped_column(ID, primary_key=True)
    exported_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(128))
    segment_id: Mapped[str | None] = mapped_column(ID)
    rule_version: Mapped[int | None] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    rows_kept: Mapped[int] = mapped_column(Integer)
    rows_excluded: Mapped[int] = mapped_column(Integer)
    unmasked: Mapped[bool] = mapped_column(Boolean, default=False)
    path: Mapped[str] = mapped_column(Text)
    #: ``written``, ``not published (<why>)``, ``replaced by a later run at <time> UTC``
    #: or ``purged at <time> UTC by <actor>; …`` (an archived file deleted).
    #: Nullable only because DuckDB cannot add a NOT NULL column to an existing table.
    status: Mapped[str] = mapped_column(
        String(200), nullable=True, default=EXPORT_WRITTEN, server_default=EXPORT_WRITTEN
    )
    #: Why the list was unmasked (required for an unmasked export), then ``purged: <why>``
    #: appended when its archived file is purged. Nullable: masked exports need none.
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class StoreExport(Base):
    """Audit of every export of the store's tables (``crm-ml export parquet``).

    Such an export holds every customer's unmasked data outside the store: the
    erasure summary names the folders of those made before it that still exist.
    """

    __tablename__ = "store_export"
    export_id: Mapped[str] = mapped_column(ID, primary_key=True)
    exported_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The export's folder, absolute.
    folder: Mapped[str] = mapped_column(Text)
    #: The tables exported, comma-separated, and the rows of ``customer`` (None if not one).
    tables: Mapped[str] = mapped_column(Text)
    customers: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RetentionPurge(Base):
    """Audit of every retention purge (``crm-ml retention purge``): what went, by whom, why.

    Its ``before`` also bounds what may be made again: a report dated before it
    is refused (:func:`crm_ml.retention.latest_purge`).
    """

    __tablename__ = "retention_purge"
    purge_id: Mapped[str] = mapped_column(ID, primary_key=True)
    purged_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    #: Data dated before this time (naive UTC) was purged.
    before: Mapped[datetime] = mapped_column(DateTime)
    #: What was deleted, counted: ``score: 34093; segment_member: 13195; …``.
    deleted: Mapped[str] = mapped_column(Text)


#: Source tables a user or the demo loads, in an order that satisfies references.
SOURCE_TABLES = (
    "customer",
    "customer_identity",
    "custom_field",
    "custom_field_value",
    "customer_owner",
    "consent",
    "product",
    "store_location",
    "orders",
    "order_item",
    "behavior_event",
    "tier",
    "tier_change",
    "points_ledger",
    "stored_value_ledger",
    "campaign",
    "coupon",
    "campaign_contact",
)

__all__ = [
    "NAMING_CONVENTION",
    "SCHEMA_VERSION",
    "SOURCE_TABLES",
    "Base",
]
