"""Reading the store's tables for the analyses, one SQLAlchemy Core select each.

The same query must run on DuckDB, SQLite and PostgreSQL, so window bounds are
bound as Python datetimes and timestamp columns are compared with ``>=`` and
``<`` only (SQLite compares timestamps as text). Everything else — periods,
gaps, ranks — is done in pandas on the frames these functions return, each
cast to declared dtypes so that every engine gives the same frame.

The leakage guard lives here: every event-time filter is ``< as_of``.

Merges are resolved here too, as the features resolve them: a merged record's
orders, points, tier changes, campaign contacts and owners are read under the
surviving ``customer_id`` (:func:`crm_ml.rules.context.surviving_ids`), so a
person is one customer in every analysis and a merged-away id never appears.
Scores are not re-keyed: they were computed for the id they name.
"""

from __future__ import annotations

import logging

import pandas as pd
from sqlalchemy import Connection, Executable, select

from crm_ml.analysis._common import bind
from crm_ml.rules.context import surviving_ids, to_survivors
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.schema import (
    Campaign,
    CampaignContact,
    CustomerOwner,
    Order,
    OrderItem,
    PointsLedger,
    Score,
    Tier,
    TierChange,
)

log = logging.getLogger(__name__)

_ORDER_DTYPES = {
    "order_id": "str",
    "customer_id": "str",
    "ordered_at": "datetime64[us]",
    "net_amount": "float64",
}


def _rows(conn: Connection, stmt: Executable, dtypes: dict[str, str]) -> pd.DataFrame:
    """Run ``stmt`` and return its rows as a frame with ``dtypes`` (column order as given)."""
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(dtypes))
    return frame.astype(dtypes)


def _person_rows(conn: Connection, stmt: Executable, dtypes: dict[str, str]) -> pd.DataFrame:
    """Run ``stmt`` like :func:`_rows`; a merged record's ``customer_id`` becomes its survivor's."""
    frame = _rows(conn, stmt, dtypes)
    frame["customer_id"] = to_survivors(frame["customer_id"], surviving_ids(conn))
    return frame


def _frame(
    store: Store, stmt: Executable, dtypes: dict[str, str], *, people: bool = True
) -> pd.DataFrame:
    """Check the store, then run ``stmt`` like :func:`_person_rows` (or :func:`_rows`)."""
    with store.connect() as conn:
        check_store(conn)
        return _person_rows(conn, stmt, dtypes) if people else _rows(conn, stmt, dtypes)


def read_orders(
    store: Store, as_of: pd.Timestamp, *, since: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Orders placed in ``[since, as_of)``, valued net of refunds (see :func:`order_revenue`)."""
    with store.connect() as conn:
        check_store(conn)
        return order_revenue(conn, as_of, since=since)


def order_revenue(
    conn: Connection, as_of: pd.Timestamp, *, since: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Orders placed in ``[since, as_of)``, valued net of refunds made before ``as_of``.

    A refund counts against the order it returns (not the month it was made
    in), but only once it has happened: a refund posted on or after ``as_of`` is
    unknown at ``as_of``. Revenue is floored at zero per order. Every revenue
    figure of the analyses and of the churn lists is built from this.

    Returns
    -------
    pandas.DataFrame
        Columns ``order_id``, ``customer_id`` (the survivor's for a merged
        record's order), ``ordered_at`` (naive UTC) and ``revenue`` (float64),
        in no particular order (callers sort what they need).
    """
    window = [Order.ordered_at < bind(as_of)]
    if since is not None:
        window.append(Order.ordered_at >= bind(since))
    orders = _person_rows(
        conn,
        select(Order.order_id, Order.customer_id, Order.ordered_at, Order.net_amount).where(
            *window
        ),
        _ORDER_DTYPES,
    )
    refund_stmt = (
        select(OrderItem.order_id, OrderItem.refund_amount)
        .join(Order, Order.order_id == OrderItem.order_id)
        .where(*window, OrderItem.refunded_at < bind(as_of), OrderItem.refund_amount > 0)
    )
    refunds = _rows(conn, refund_stmt, {"order_id": "str", "refund_amount": "float64"})
    refunded = refunds.groupby("order_id")["refund_amount"].sum()
    orders["revenue"] = (
        orders["net_amount"]
        - refunded.reindex(orders["order_id"]).to_numpy("float64", na_value=0.0)
    ).clip(lower=0.0)
    return orders.drop(columns="net_amount")


def read_tiers(store: Store) -> pd.DataFrame:
    """Read the tier table: ``tier_id``, ``name``, ``label`` (the name where none), ``level``.

    Sorted by ``level``.
    """
    stmt = select(Tier.tier_id, Tier.name, Tier.label, Tier.level)
    dtypes = {"tier_id": "str", "name": "str", "label": "object", "level": "int64"}
    frame = _frame(store, stmt, dtypes, people=False)
    frame["label"] = frame["label"].fillna(frame["name"]).astype("str")
    return frame.sort_values("level", ignore_index=True)


def read_tier_changes(store: Store, as_of: pd.Timestamp) -> pd.DataFrame:
    """Tier changes made before ``as_of``: ``customer_id, changed_at, from_tier, to_tier``."""
    stmt = select(
        TierChange.customer_id, TierChange.changed_at, TierChange.from_tier, TierChange.to_tier
    ).where(TierChange.changed_at < bind(as_of))
    dtypes = {
        "customer_id": "str",
        "changed_at": "datetime64[us]",
        "from_tier": "str",
        "to_tier": "str",
    }
    return _frame(store, stmt, dtypes).sort_values(["customer_id", "changed_at"], ignore_index=True)


def read_points_ledger(store: Store, as_of: pd.Timestamp) -> pd.DataFrame:
    """Points postings made before ``as_of``.

    Returns
    -------
    pandas.DataFrame
        Columns ``entry_id, customer_id, posted_at, kind, points`` (int64),
        ``expires_at`` (NaT when the points never expire).
    """
    stmt = select(
        PointsLedger.entry_id,
        PointsLedger.customer_id,
        PointsLedger.posted_at,
        PointsLedger.kind,
        PointsLedger.points,
        PointsLedger.expires_at,
    ).where(PointsLedger.posted_at < bind(as_of))
    dtypes = {
        "entry_id": "str",
        "customer_id": "str",
        "posted_at": "datetime64[us]",
        "kind": "str",
        "points": "int64",
        "expires_at": "datetime64[us]",
    }
    return _frame(store, stmt, dtypes)


def read_campaigns(store: Store) -> pd.DataFrame:
    """Campaigns: ``campaign_id, name, channel, start_at, end_at``."""
    stmt = select(
        Campaign.campaign_id, Campaign.name, Campaign.channel, Campaign.start_at, Campaign.end_at
    )
    dtypes = {
        "campaign_id": "str",
        "name": "str",
        "channel": "str",
        "start_at": "datetime64[us]",
        "end_at": "datetime64[us]",
    }
    return _frame(store, stmt, dtypes, people=False)


def read_campaign_contacts(store: Store, as_of: pd.Timestamp) -> pd.DataFrame:
    """Contacts made before ``as_of``, with a response only if it came before ``as_of``.

    A contact flagged as responded without a ``responded_at`` cannot be dated;
    it is counted as a response (a source that records only a flag would
    otherwise show no response at all) and the count is logged.

    Returns
    -------
    pandas.DataFrame
        Columns ``campaign_id, customer_id, group`` (``treatment``/``control``),
        ``responded`` (bool).
    """
    stmt = select(
        CampaignContact.campaign_id,
        CampaignContact.customer_id,
        CampaignContact.group,
        CampaignContact.responded,
        CampaignContact.responded_at,
    ).where(CampaignContact.contacted_at < bind(as_of))
    dtypes = {
        "campaign_id": "str",
        "customer_id": "str",
        "group": "str",
        "responded": "object",
        "responded_at": "datetime64[us]",
    }
    frame = _frame(store, stmt, dtypes)
    flagged = frame["responded"].fillna(False).astype(bool)
    undated = flagged & frame["responded_at"].isna()
    if undated.any():
        log.warning("%d response(s) have no responded_at and are counted undated", undated.sum())
    frame["responded"] = flagged & (undated | (frame["responded_at"] < as_of))
    return frame.drop(columns="responded_at")


def read_scores(store: Store, as_of: pd.Timestamp, *, model_name: str) -> pd.DataFrame:
    """Read the latest scoring run of ``model_name`` at or before ``as_of``.

    ``score.as_of`` is the cutoff of the data a score was computed from (rows
    ``< score.as_of``), not an event time: a score as of the report date is the
    one to use, and one dated after it is not.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, score_as_of, p_churn, band``; empty if the model
        has no score by ``as_of``.
    """
    # "<= as_of" written as "< as_of + 1 µs": timestamps are compared with < and >= only.
    through = bind(as_of + pd.Timedelta(microseconds=1))
    stmt = select(Score.customer_id, Score.as_of, Score.probability, Score.band).where(
        Score.model_name == model_name, Score.as_of < through
    )
    dtypes = {
        "customer_id": "str",
        "score_as_of": "datetime64[us]",
        "p_churn": "float64",
        "band": "str",
    }
    scores = _frame(store, stmt, dtypes, people=False)
    if scores.empty:
        return scores
    latest = scores["score_as_of"].max()
    log.info("Using %s scores as of %s", model_name, latest)
    return scores[scores["score_as_of"] == latest].reset_index(drop=True)


def read_owners(store: Store, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each customer's owner just before ``as_of``.

    Of the assignments in effect (started before ``as_of``, not ended by then:
    ``valid_to >= as_of`` or open), the latest started wins. A merged record's
    assignments count as the survivor's, as in the churn lists' routing
    (:func:`crm_ml.segments.lists.owners_at`).

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, owner_id, owner_name``; one row per owned customer.
    """
    stmt = select(
        CustomerOwner.customer_id,
        CustomerOwner.valid_from,
        CustomerOwner.valid_to,
        CustomerOwner.owner_id,
        CustomerOwner.owner_name,
    ).where(CustomerOwner.valid_from < bind(as_of))
    dtypes = {
        "customer_id": "str",
        "valid_from": "datetime64[us]",
        "valid_to": "datetime64[us]",
        "owner_id": "str",
        "owner_name": "str",
    }
    owners = _frame(store, stmt, dtypes)
    owners = owners[owners["valid_to"].isna() | (owners["valid_to"] >= as_of)]
    owners = owners.sort_values(["customer_id", "valid_from", "owner_id"])
    current = owners.drop_duplicates("customer_id", keep="last")
    return current[["customer_id", "owner_id", "owner_name"]].reset_index(drop=True)
