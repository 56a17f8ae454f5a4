"""Reading one customer's rows for :mod:`crm_ml.analysis.customer_360`.

Every query filters on the customer id and an event time ``< as_of`` with bound
parameters, and returns a frame with declared column names; personal
identifiers are masked here unless ``unmask`` is set, so they leave the store
masked.

Two things are read by the rules the rest of the package uses, so this view
agrees with segments, the explorer and ``customers_with_tag``:

- tags: a membership is in force over ``[valid_from, valid_to)``, as in
  :func:`crm_ml.rules.tag_members_at` — tags applied at ``as_of`` are in force
  at it, tags ended at ``as_of`` are not;
- merges: a person is their surviving record plus every record merged into it,
  chains followed (``A -> B -> C``), whatever the merge date, as
  :func:`crm_ml.rules.context.surviving_ids` resolves them for the lists and
  the analyses and :mod:`crm_ml.features.identity` for the features. Merging
  re-keys history to the survivor, but rows can still sit under a merged id
  (imported after the merge, or merges imported from a source system with
  ``customer.merged_into``); they are read as the person's, as the features
  count them. Scores are the exception: they were computed for the id they
  name (:mod:`crm_ml.store.rekey` keeps them there), so only the survivor's show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Executable, func, select

from crm_ml.analysis._common import bind
from crm_ml.errors import NotFoundError
from crm_ml.rules.context import surviving_ids
from crm_ml.segments.masking import mask_email, mask_phone
from crm_ml.store.schema import (
    CONSENT_CHANNELS,
    CONSENT_PROTECTION,
    CONSENT_PURPOSES,
    BehaviorEvent,
    Campaign,
    CampaignContact,
    Consent,
    Customer,
    CustomerIdentity,
    CustomerOwner,
    CustomerTag,
    ErasedCustomer,
    Order,
    OrderItem,
    PointsLedger,
    Score,
    TagDefinition,
    Tier,
    TierChange,
)


def _read(conn: Connection, stmt: Executable, columns: list[str]) -> pd.DataFrame:
    """Run ``stmt`` and return its rows with ``columns``; datetime columns become datetime64[us]."""
    frame = pd.DataFrame([tuple(r) for r in conn.execute(stmt).all()], columns=columns)
    for column in columns:
        if column.endswith(("_at", "_from", "_to", "_of")):
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
        elif frame.empty:
            frame[column] = frame[column].astype("object")
    return frame


def _dated(
    conn: Connection,
    model: Any,
    columns: list[str],
    at: str,
    ids: Sequence[str],
    on: pd.Timestamp,
    *order: Any,
) -> pd.DataFrame:
    """Rows of ``model`` under the records ``ids`` whose column ``at`` is before ``on``.

    Oldest first, then by ``order``; the last column, ``record_id``, names the
    record each row is stored under.
    """
    time = getattr(model, at)
    stmt = (
        select(*(getattr(model, c) for c in columns), model.customer_id)
        .where(model.customer_id.in_(ids), time < bind(on))
        .order_by(time, *order)
    )
    return _read(conn, stmt, [*columns, "record_id"])


#: Free-text columns of a person's history, by the part of :func:`read_parts` that shows them.
FREE_TEXT = {
    "events": BehaviorEvent.detail,
    "points": PointsLedger.note,
    "tiers": TierChange.reason,
}


def shared_texts(conn: Connection, part: str, texts: Iterable[str], customers: int) -> set[str]:
    """Return those of ``texts`` that at least ``customers`` customers' rows of ``part`` hold.

    Text the system writes (消费积分, 入会) or many people type (a search for 牛奶)
    is shared; a note about one person (a name, an address) is not.
    """
    column = FREE_TEXT[part]
    wanted = sorted({t for t in texts if isinstance(t, str)})
    if not wanted:
        return set()
    model = column.class_
    stmt = (
        select(column)
        .where(column.in_(wanted))
        .group_by(column)
        .having(func.count(model.customer_id.distinct()) >= customers)
    )
    return {str(row[0]) for row in conn.execute(stmt)}


def _mask_other(value: str) -> str:
    """Mask an identifier other than a phone or email: first two and last two characters."""
    return value[:2] + "***" + value[-2:] if len(value) > 6 else "***"


def _mask_identity(kind: str, value: str) -> str:
    if kind == "phone":
        return mask_phone(value)
    if kind == "email":
        return mask_email(value)
    return _mask_other(value)


@dataclass(frozen=True)
class Person:
    """Whom a customer 360 shows: a surviving record and the records merged into it.

    Attributes
    ----------
    requested_id : str
        The id asked for: the survivor's own, or a record merged into it.
    customer_id : str
        The surviving record: the person's id in features, scores and lists.
    merged : tuple of str
        Records merged into it, chains followed, sorted.
    row : Row
        The survivor's ``customer`` row (its profile).
    created_at : pandas.Timestamp or None
        The earliest creation time over the person's records, as the features'
        population reads it.
    """

    requested_id: str
    customer_id: str
    merged: tuple[str, ...]
    row: Any
    created_at: pd.Timestamp | None

    @property
    def records(self) -> list[str]:
        """Every record whose rows are the person's: the survivor first."""
        return [self.customer_id, *self.merged]


def _customer(conn: Connection, requested: str, survivor: str) -> Any:
    """Return the survivor's ``customer`` row, or say why there is none."""
    row = conn.execute(select(Customer).where(Customer.customer_id == survivor)).first()
    if row is not None:
        return row
    if requested != survivor:
        raise NotFoundError(
            f"Customer {requested!r} was merged into {survivor!r}, which is not in the "
            "store. Load that customer, or check customer_merge / customer.merged_into."
        )
    raise NotFoundError(
        f"No customer {requested!r} in the store. Check the id (ids are text, so "
        "'000123' and '123' differ)."
    )


def _earliest_created(conn: Connection, records: Sequence[str]) -> pd.Timestamp | None:
    """Return the person's creation time: their earliest record's, as the features read it."""
    first = conn.execute(
        select(func.min(Customer.created_at)).where(Customer.customer_id.in_(records))
    ).scalar()
    return None if first is None else pd.Timestamp(first)


def find_person(conn: Connection, customer_id: str, as_of: pd.Timestamp) -> Person:
    """Return the person ``customer_id`` belongs to, if they existed before ``as_of``.

    A merged-away id leads to its final survivor (chains followed by
    :func:`crm_ml.rules.context.surviving_ids`, the resolution the lists and
    analyses use), so an old card number finds the person it belongs to.

    Raises
    ------
    NotFoundError
        If neither the id nor its survivor is in the store, or the person's
        earliest record was created on or after ``as_of``.
    """
    id_map = surviving_ids(conn)
    survivor = id_map.get(customer_id, customer_id)
    merged = tuple(sorted(m for m, s in id_map.items() if s == survivor))
    row = _customer(conn, customer_id, survivor)
    created = _earliest_created(conn, [survivor, *merged])
    if created is not None and created >= as_of:
        raise NotFoundError(
            f"Customer {survivor!r} was created at {created:%Y-%m-%d %H:%M}, "
            f"not before as_of {as_of:%Y-%m-%d}; pick a later as_of."
        )
    return Person(customer_id, survivor, merged, row, created)


def _orders(conn: Connection, ids: Sequence[str], on: pd.Timestamp) -> pd.DataFrame:
    cols = ["order_id", "ordered_at", "channel", "store_id", "gross_amount", "discount_amount"]
    orders = _read(
        conn,
        select(*(getattr(Order, c) for c in cols), Order.net_amount, Order.customer_id)
        .where(Order.customer_id.in_(ids), Order.ordered_at < bind(on))
        .order_by(Order.ordered_at, Order.order_id),
        [*cols, "net_amount", "record_id"],
    )
    items = _read(
        conn,
        select(
            OrderItem.order_id, OrderItem.quantity, OrderItem.refund_amount, OrderItem.refunded_at
        )
        .join(Order, Order.order_id == OrderItem.order_id)
        .where(Order.customer_id.in_(ids), Order.ordered_at < bind(on)),
        ["order_id", "quantity", "refund_amount", "refunded_at"],
    )
    # A refund is known only once it has happened.
    items["refund_amount"] = items["refund_amount"].where(items["refunded_at"] < on, 0.0)
    per_order = items.groupby("order_id").agg(
        items=("quantity", "sum"), refund_amount=("refund_amount", "sum")
    )
    orders = orders.join(per_order, on="order_id")
    orders["items"] = orders["items"].fillna(0).astype("int64")
    orders["refund_amount"] = orders["refund_amount"].fillna(0.0).astype("float64")
    return orders[[c for c in orders.columns if c != "record_id"] + ["record_id"]]


def _points(conn: Connection, ids: Sequence[str], on: pd.Timestamp) -> pd.DataFrame:
    cols = ["posted_at", "kind", "points", "expires_at", "note"]
    # One running balance over all the person's records: the balance the features sum.
    ledger = _dated(conn, PointsLedger, cols, "posted_at", ids, on, PointsLedger.entry_id)
    ledger["points"] = ledger["points"].astype("int64")
    ledger.insert(3, "balance", ledger["points"].cumsum().astype("int64"))
    return ledger


def _tags(conn: Connection, ids: Sequence[str], on: pd.Timestamp) -> pd.DataFrame:
    tags = _read(
        conn,
        select(
            CustomerTag.tag_id,
            TagDefinition.label,
            TagDefinition.category,
            CustomerTag.source,
            CustomerTag.valid_from,
            CustomerTag.valid_to,
            CustomerTag.customer_id,
        )
        .join(TagDefinition, TagDefinition.tag_id == CustomerTag.tag_id, isouter=True)
        .where(CustomerTag.customer_id.in_(ids), CustomerTag.valid_from <= bind(on)),
        ["tag", "label", "category", "source", "valid_from", "valid_to", "record_id"],
    )
    # In force over [valid_from, valid_to), as tag_members_at reads it: a membership that
    # closes after as_of was still open at as_of; one that closes at as_of was not.
    tags["valid_to"] = tags["valid_to"].where(tags["valid_to"] <= on)
    tags.insert(6, "active", tags["valid_to"].isna())
    return tags.sort_values(
        ["active", "valid_from", "tag", "record_id"], ascending=[False, False, True, True]
    )


def _reason_items(raw: object) -> list[dict[str, Any]]:
    if not isinstance(raw, str) or not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    return [i if isinstance(i, dict) else {"text": str(i)} for i in items]


def _scores(conn: Connection, cid: str, on: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    # "score.as_of <= as_of" as "< as_of + 1 µs": timestamps are compared with < only.
    scores = _read(
        conn,
        select(Score.model_name, Score.model_version, Score.as_of, Score.probability, Score.band)
        .add_columns(Score.reasons)
        .where(Score.customer_id == cid, Score.as_of < bind(on + pd.Timedelta(microseconds=1))),
        ["model_name", "model_version", "score_as_of", "probability", "band", "reasons"],
    )
    latest = scores.sort_values("score_as_of").drop_duplicates("model_name", keep="last")
    reasons = pd.DataFrame(
        [
            {"model_name": m, "rank": rank, **item}
            for m, raw in zip(latest["model_name"], latest["reasons"], strict=True)
            for rank, item in enumerate(_reason_items(raw), start=1)
        ],
        columns=["model_name", "rank", "text", "actionable", "direction", "contribution"],
    )
    texts = reasons.groupby("model_name")["text"].agg(lambda t: "; ".join(map(str, t)))
    latest = latest.set_index("model_name").sort_index()
    latest["reasons"] = texts.reindex(latest.index).fillna("")
    return latest.astype({"probability": "float64"}), reasons


def _consent(
    conn: Connection, ids: Sequence[str], on: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the channel × purpose grid at ``on`` and the dated decisions behind it.

    Over all the person's records the latest decision wins, and of decisions
    made at the same instant the most protective (withdrawn, then unknown, then
    granted), as the features and the lists read consent.
    """
    rows = _dated(
        conn, Consent, ["channel", "purpose", "updated_at", "status"], "updated_at", ids, on
    )
    protection = rows["status"].map(CONSENT_PROTECTION).fillna(-1)
    rows = rows.assign(_protection=protection).sort_values(
        ["updated_at", "_protection"], ascending=[True, False], kind="stable"
    )
    rows = rows.drop(columns="_protection").reset_index(drop=True)
    latest = rows.drop_duplicates(["channel", "purpose"], keep="last")
    grid = latest.pivot(index="channel", columns="purpose", values="status")
    grid = grid.reindex(index=list(CONSENT_CHANNELS), columns=list(CONSENT_PURPOSES))
    grid = grid.astype("object").fillna("unknown").astype("str")
    grid.index.name, grid.columns.name = "channel", None
    rows["what"] = rows["channel"] + "/" + rows["purpose"] + ": " + rows["status"]
    return grid, rows


def _owners(conn: Connection, ids: Sequence[str], on: pd.Timestamp) -> pd.DataFrame:
    """Every assignment started before ``on``; ``current`` marks the one in force at it.

    Of the assignments still in force (over all the person's records), the
    latest started is the owner, as the churn lists route them
    (:func:`crm_ml.segments.lists.owners_at`): a merged record's older, still
    open assignment does not hide behind a later one that has ended.
    """
    cols = ["owner_id", "owner_name", "valid_from", "valid_to"]
    owners = _dated(conn, CustomerOwner, cols, "valid_from", ids, on, CustomerOwner.owner_id)
    owners["valid_to"] = owners["valid_to"].where(owners["valid_to"] < on)
    owners.insert(4, "current", False)
    open_ = owners.index[owners["valid_to"].isna()]
    if len(open_):
        owners.loc[open_[-1], "current"] = True
    return owners


def _campaigns(conn: Connection, ids: Sequence[str], on: pd.Timestamp) -> pd.DataFrame:
    cols = ["campaign_id", "name", "channel", "group", "contacted_at", "responded", "responded_at"]
    contacts = _read(
        conn,
        select(CampaignContact.campaign_id, Campaign.name, Campaign.channel)
        .add_columns(*(getattr(CampaignContact, c) for c in cols[3:]), CampaignContact.customer_id)
        .join(Campaign, Campaign.campaign_id == CampaignContact.campaign_id, isouter=True)
        .where(CampaignContact.customer_id.in_(ids), CampaignContact.contacted_at < bind(on))
        .order_by(CampaignContact.contacted_at, CampaignContact.campaign_id),
        [*cols, "record_id"],
    )
    # A response counts only if it came before as_of (an undated flag counts).
    flag = contacts["responded"].fillna(False).astype(bool)
    when = contacts["responded_at"]
    contacts["responded"] = flag & (when.isna() | (when < on))
    return contacts.drop(columns="responded_at")


def _identities(
    conn: Connection, ids: Sequence[str], on: pd.Timestamp, unmask: bool
) -> pd.DataFrame:
    """Return the person's identifiers, one row per (kind, value): verified first, then oldest.

    The same phone on two records is one identifier (as re-keying keeps it),
    verified if either record verified it.
    """
    cols = ["kind", "value", "verified", "created_at"]
    ident = _dated(conn, CustomerIdentity, cols, "created_at", ids, on)
    ident["verified"] = ident["verified"].fillna(False).astype(bool)
    ident = ident.sort_values(["kind", "verified", "created_at"], ascending=[True, False, True])
    ident = ident.drop_duplicates(["kind", "value"])
    if not unmask:
        ident["value"] = [
            _mask_identity(k, v) for k, v in zip(ident.kind, ident.value, strict=True)
        ]
    return ident[["kind", "value", "verified", "record_id"]].reset_index(drop=True)


def _tier_names(conn: Connection) -> dict[str, str]:
    return {str(t): str(n) for t, n in conn.execute(select(Tier.tier_id, Tier.name)).all()}


def _erased_at(conn: Connection, ids: Sequence[str]) -> datetime | None:
    """When the person's records were erased on request (the first), or None.

    Whatever ``as_of``: the erasure blanked the profile for good, so an earlier
    view must say why it is blank too.
    """
    found = conn.execute(
        select(func.min(ErasedCustomer.erased_at)).where(ErasedCustomer.customer_id.in_(ids))
    ).scalar()
    return None if found is None else pd.Timestamp(found).to_pydatetime()


def read_parts(conn: Connection, person: Person, on: pd.Timestamp, unmask: bool) -> dict[str, Any]:
    """Read everything about ``person`` before ``on`` (tags: in force at it), one frame per part.

    Rows of every record of the person are read (see the module notes), each
    history frame ending with ``record_id``, the record a row is stored under;
    scores are the survivor's only.

    Returns
    -------
    dict
        ``events, tiers, campaigns, orders, points, tags, owners, identities,
        scores, reasons, consent, consent_rows`` (frames), ``merged`` (ids
        of records merged into the person's surviving record) and ``erased_at``
        (when the person was erased on request, or None).
    """
    ids = person.records
    event_cols = ["occurred_at", "event_type", "channel", "touchpoint", "product_id", "detail"]
    tier_cols = ["changed_at", "from_tier", "to_tier", "direction", "reason"]
    parts: dict[str, Any] = {
        "events": _dated(
            conn, BehaviorEvent, event_cols, "occurred_at", ids, on, BehaviorEvent.event_id
        ),
        # Two changes at one instant: the higher tier id last, so the current tier is the
        # one the features' tier_level takes (latest change, then the greatest to_tier).
        "tiers": _dated(conn, TierChange, tier_cols, "changed_at", ids, on, TierChange.to_tier),
        "campaigns": _campaigns(conn, ids, on),
        "orders": _orders(conn, ids, on),
        "points": _points(conn, ids, on),
        "tags": _tags(conn, ids, on),
        "owners": _owners(conn, ids, on),
        "identities": _identities(conn, ids, on, unmask),
        "merged": list(person.merged),
        "erased_at": _erased_at(conn, ids),
    }
    parts["scores"], parts["reasons"] = _scores(conn, person.customer_id, on)
    parts["consent"], parts["consent_rows"] = _consent(conn, ids, on)
    names = _tier_names(conn)
    for column in ("from_tier", "to_tier"):
        ids = parts["tiers"][column].astype("object")
        parts["tiers"][column] = ids.map(lambda t: names.get(t, t) if isinstance(t, str) else "—")
    return parts
