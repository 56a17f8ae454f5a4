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
- merges: a merge counts whatever its date, as in
  :mod:`crm_ml.features.identity` (a duplicate found later was the same person
  all along), and as the merged record's own ``status``/``merged_into`` show.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Executable, select

from crm_ml.analysis._common import bind
from crm_ml.errors import NotFoundError
from crm_ml.segments.masking import mask_email, mask_phone
from crm_ml.store.schema import (
    CONSENT_CHANNELS,
    CONSENT_PURPOSES,
    BehaviorEvent,
    Campaign,
    CampaignContact,
    Consent,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    CustomerOwner,
    CustomerTag,
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
    cid: str,
    on: pd.Timestamp,
    *order: Any,
) -> pd.DataFrame:
    """Rows of ``model`` for customer ``cid`` whose column ``at`` is before ``on``, oldest first."""
    time = getattr(model, at)
    stmt = (
        select(*(getattr(model, c) for c in columns))
        .where(model.customer_id == cid, time < bind(on))
        .order_by(time, *order)
    )
    return _read(conn, stmt, columns)


def _mask_other(value: str) -> str:
    """Mask an identifier other than a phone or email: first two and last two characters."""
    return value[:2] + "***" + value[-2:] if len(value) > 6 else "***"


def _mask_identity(kind: str, value: str) -> str:
    if kind == "phone":
        return mask_phone(value)
    if kind == "email":
        return mask_email(value)
    return _mask_other(value)


def customer_row(conn: Connection, customer_id: str, as_of: pd.Timestamp) -> Any:
    """Return the ``customer`` row, or raise if it does not exist before ``as_of``."""
    row = conn.execute(select(Customer).where(Customer.customer_id == customer_id)).first()
    if row is None:
        raise NotFoundError(
            f"No customer {customer_id!r} in the store. Check the id (ids are text, so "
            "'000123' and '123' differ) or whether it was merged into another record."
        )
    if row.created_at is not None and pd.Timestamp(row.created_at) >= as_of:
        raise NotFoundError(
            f"Customer {customer_id!r} was created at {row.created_at:%Y-%m-%d %H:%M}, "
            f"not before as_of {as_of:%Y-%m-%d}; pick a later as_of."
        )
    return row


def _orders(conn: Connection, cid: str, on: pd.Timestamp) -> pd.DataFrame:
    cols = ["order_id", "ordered_at", "channel", "store_id", "gross_amount", "discount_amount"]
    orders = _read(
        conn,
        select(*(getattr(Order, c) for c in cols), Order.net_amount)
        .where(Order.customer_id == cid, Order.ordered_at < bind(on))
        .order_by(Order.ordered_at, Order.order_id),
        [*cols, "net_amount"],
    )
    items = _read(
        conn,
        select(
            OrderItem.order_id, OrderItem.quantity, OrderItem.refund_amount, OrderItem.refunded_at
        )
        .join(Order, Order.order_id == OrderItem.order_id)
        .where(Order.customer_id == cid, Order.ordered_at < bind(on)),
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
    return orders


def _points(conn: Connection, cid: str, on: pd.Timestamp) -> pd.DataFrame:
    cols = ["posted_at", "kind", "points", "expires_at", "note"]
    ledger = _dated(conn, PointsLedger, cols, "posted_at", cid, on, PointsLedger.entry_id)
    ledger["points"] = ledger["points"].astype("int64")
    ledger.insert(3, "balance", ledger["points"].cumsum().astype("int64"))
    return ledger


def _tags(conn: Connection, cid: str, on: pd.Timestamp) -> pd.DataFrame:
    tags = _read(
        conn,
        select(
            CustomerTag.tag_id,
            TagDefinition.label,
            TagDefinition.category,
            CustomerTag.source,
            CustomerTag.valid_from,
            CustomerTag.valid_to,
        )
        .join(TagDefinition, TagDefinition.tag_id == CustomerTag.tag_id, isouter=True)
        .where(CustomerTag.customer_id == cid, CustomerTag.valid_from <= bind(on)),
        ["tag", "label", "category", "source", "valid_from", "valid_to"],
    )
    # In force over [valid_from, valid_to), as tag_members_at reads it: a membership that
    # closes after as_of was still open at as_of; one that closes at as_of was not.
    tags["valid_to"] = tags["valid_to"].where(tags["valid_to"] <= on)
    tags["active"] = tags["valid_to"].isna()
    return tags.sort_values(["active", "valid_from", "tag"], ascending=[False, False, True])


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
        columns=["model_name", "rank", "text", "actionable", "contribution"],
    )
    texts = reasons.groupby("model_name")["text"].agg(lambda t: "; ".join(map(str, t)))
    latest = latest.set_index("model_name").sort_index()
    latest["reasons"] = texts.reindex(latest.index).fillna("")
    return latest.astype({"probability": "float64"}), reasons


def _consent(conn: Connection, cid: str, on: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the channel × purpose grid at ``on`` and the dated decisions behind it."""
    rows = _dated(
        conn, Consent, ["channel", "purpose", "updated_at", "status"], "updated_at", cid, on
    )
    latest = rows.drop_duplicates(["channel", "purpose"], keep="last")
    grid = latest.pivot(index="channel", columns="purpose", values="status")
    grid = grid.reindex(index=list(CONSENT_CHANNELS), columns=list(CONSENT_PURPOSES))
    grid = grid.astype("object").fillna("unknown").astype("str")
    grid.index.name, grid.columns.name = "channel", None
    rows["what"] = rows["channel"] + "/" + rows["purpose"] + ": " + rows["status"]
    return grid, rows


def _owners(conn: Connection, cid: str, on: pd.Timestamp) -> pd.DataFrame:
    cols = ["owner_id", "owner_name", "valid_from", "valid_to"]
    owners = _dated(conn, CustomerOwner, cols, "valid_from", cid, on)
    owners["valid_to"] = owners["valid_to"].where(owners["valid_to"] < on)
    owners["current"] = False
    if len(owners) and pd.isna(owners["valid_to"].iloc[-1]):
        owners.loc[owners.index[-1], "current"] = True
    return owners


def _campaigns(conn: Connection, cid: str, on: pd.Timestamp) -> pd.DataFrame:
    cols = ["campaign_id", "name", "channel", "group", "contacted_at", "responded", "responded_at"]
    contacts = _read(
        conn,
        select(CampaignContact.campaign_id, Campaign.name, Campaign.channel)
        .add_columns(*(getattr(CampaignContact, c) for c in cols[3:]))
        .join(Campaign, Campaign.campaign_id == CampaignContact.campaign_id, isouter=True)
        .where(CampaignContact.customer_id == cid, CampaignContact.contacted_at < bind(on))
        .order_by(CampaignContact.contacted_at),
        cols,
    )
    # A response counts only if it came before as_of (an undated flag counts).
    flag = contacts["responded"].fillna(False).astype(bool)
    when = contacts["responded_at"]
    contacts["responded"] = flag & (when.isna() | (when < on))
    return contacts.drop(columns="responded_at")


def _identities(conn: Connection, cid: str, on: pd.Timestamp, unmask: bool) -> pd.DataFrame:
    cols = ["kind", "value", "verified", "created_at"]
    ident = _dated(conn, CustomerIdentity, cols, "created_at", cid, on)
    ident = ident.sort_values(["kind", "verified", "created_at"], ascending=[True, False, True])
    if not unmask:
        ident["value"] = [
            _mask_identity(k, v) for k, v in zip(ident.kind, ident.value, strict=True)
        ]
    return ident[["kind", "value", "verified"]].reset_index(drop=True)


def _merged_records(conn: Connection, cid: str) -> list[str]:
    # A merge counts whatever its date, as in customer_features (see the module notes):
    # the merged record itself shows status "merged" on every as_of, so must its survivor.
    return sorted(
        conn.execute(
            select(CustomerMerge.merged_id).where(CustomerMerge.surviving_id == cid)
        ).scalars()
    )


def _tier_names(conn: Connection) -> dict[str, str]:
    return {str(t): str(n) for t, n in conn.execute(select(Tier.tier_id, Tier.name)).all()}


def read_parts(conn: Connection, cid: str, on: pd.Timestamp, unmask: bool) -> dict[str, Any]:
    """Read everything about customer ``cid`` before ``on`` (tags: in force at it), one per part.

    Returns
    -------
    dict
        ``events, tiers, campaigns, orders, points, tags, owners, identities,
        scores, reasons, consent, consent_rows`` (frames) and ``merged`` (ids
        of records merged into this one).
    """
    event_cols = ["occurred_at", "event_type", "channel", "touchpoint", "product_id", "detail"]
    tier_cols = ["changed_at", "from_tier", "to_tier", "direction", "reason"]
    parts: dict[str, Any] = {
        "events": _dated(
            conn, BehaviorEvent, event_cols, "occurred_at", cid, on, BehaviorEvent.event_id
        ),
        "tiers": _dated(conn, TierChange, tier_cols, "changed_at", cid, on),
        "campaigns": _campaigns(conn, cid, on),
        "orders": _orders(conn, cid, on),
        "points": _points(conn, cid, on),
        "tags": _tags(conn, cid, on),
        "owners": _owners(conn, cid, on),
        "identities": _identities(conn, cid, on, unmask),
        "merged": _merged_records(conn, cid),
    }
    parts["scores"], parts["reasons"] = _scores(conn, cid, on)
    parts["consent"], parts["consent_rows"] = _consent(conn, cid, on)
    names = _tier_names(conn)
    for column in ("from_tier", "to_tier"):
        ids = parts["tiers"][column].astype("object")
        parts["tiers"][column] = ids.map(lambda t: names.get(t, t) if isinstance(t, str) else "—")
    return parts
