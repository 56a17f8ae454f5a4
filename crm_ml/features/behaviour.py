"""Behaviour: browsing, searching, cart adds, complaints and feedback.

Searches, complaints and feedback have their own named features
(``searches_30d``, ``complaints_90d``, ``feedback_90d``) rather than
``events_<type>_<n>d`` columns, so that no two columns carry the same count.
"""

from __future__ import annotations

import ibis.expr.types as ir

from crm_ml.features.backend import Snapshot
from crm_ml.features.spec import DType, Feature, FeatureGroup, FeatureWindows, Fill

NAME = "behaviour"
NAN = float("nan")
#: Event types counted as ``events_<type>_<n>d``.
BROWSE_TYPES = ("page_view", "product_view", "add_to_cart")
#: Event types counted as browsing after the last order (searches too).
BROWSING = (*BROWSE_TYPES, "search")


def _f(name: str, dtype: DType, unit: str, description: str, fill: Fill) -> Feature:
    return Feature(name, NAME, dtype, unit, description, fill)


def features(windows: FeatureWindows) -> list[Feature]:
    """Declare the behaviour group's features, in output order."""
    s, r = windows.short_days, windows.recent_days
    counts = [
        _f(f"events_{kind}_{days}d", "int64", "count", f"{kind} events in the last {days} days.", 0)
        for kind in BROWSE_TYPES
        for days in windows.event_days
    ]
    return [
        *counts,
        _f("days_since_last_event", "float64", "days", "Days since any tracked event.", NAN),
        _f(
            "browse_events_since_last_order",
            "float64",
            "count",
            "Page views, product views, searches and cart adds after the last order (and "
            "before as_of); NaN with no order. Customers who still browse are still around.",
            NAN,
        ),
        _f(
            f"cart_abandonment_rate_{s}d",
            "float64",
            "ratio",
            f"Share of add_to_cart events in the last {s} days not followed by an order within "
            f"{windows.cart_hours} hours (and before as_of); NaN with no cart adds.",
            NAN,
        ),
        _f(f"searches_{s}d", "int64", "count", f"Searches in the last {s} days.", 0),
        _f(f"complaints_{r}d", "int64", "count", f"Complaints in the last {r} days.", 0),
        _f(f"feedback_{r}d", "int64", "count", f"Feedback events in the last {r} days.", 0),
        _f("days_since_last_complaint", "float64", "days", "Days since the last complaint.", NAN),
        _f("days_since_last_feedback", "float64", "days", "Days since the last feedback.", NAN),
    ]


def _events(snap: Snapshot) -> ir.Table:
    events = snap.table("behavior_event")
    return events.filter(events.occurred_at < snap.as_of)


def _counts(snap: Snapshot) -> ir.Table:
    w = snap.windows
    e = _events(snap)
    # Only the longest window's rows can be counted: filter first, then count.
    e = e.filter(e.occurred_at >= snap.bound(max(*w.event_days, w.short_days, w.recent_days)))
    kind, at = e.event_type, e.occurred_at

    def count(event_type: str, days: int) -> ir.IntegerScalar:
        return e.count(where=(kind == event_type) & (at >= snap.bound(days)))

    return e.group_by("customer_id").agg(
        **{f"events_{k}_{d}d": count(k, d) for k in BROWSE_TYPES for d in w.event_days},
        **{f"searches_{w.short_days}d": count("search", w.short_days)},
        **{f"complaints_{w.recent_days}d": count("complaint", w.recent_days)},
        **{f"feedback_{w.recent_days}d": count("feedback", w.recent_days)},
    )


def _recency(snap: Snapshot) -> ir.Table:
    e = _events(snap)
    kind, at = e.event_type, e.occurred_at
    agg = e.group_by("customer_id").agg(
        _last=at.max(),
        _complaint=at.max(where=kind == "complaint"),
        _feedback=at.max(where=kind == "feedback"),
    )
    return agg.select(
        "customer_id",
        days_since_last_event=snap.days_before(agg._last),
        days_since_last_complaint=snap.days_before(agg._complaint),
        days_since_last_feedback=snap.days_before(agg._feedback),
    )


def _browsing_since_last_order(snap: Snapshot) -> ir.Table:
    orders = snap.table("orders")
    orders = orders.filter(orders.ordered_at < snap.as_of)
    last = orders.group_by("customer_id").agg(_last=snap.epoch(orders.ordered_at).max())
    e = _events(snap)
    e = e.filter(e.event_type.isin(BROWSING))
    e = e.select(browser=e.customer_id, at=snap.epoch(e.occurred_at))
    # Epoch seconds on both sides, as in the cart join: the same comparison on every engine.
    joined = last.left_join(e, [last.customer_id == e.browser, e.at > last._last])
    agg = joined.group_by("customer_id").agg(_n=joined.at.count())
    return agg.select("customer_id", browse_events_since_last_order=agg._n.cast("float64"))


def _cart_abandonment(snap: Snapshot) -> ir.Table:
    w = snap.windows
    start = snap.bound(w.short_days)
    e = _events(snap)
    adds = e.filter((e.event_type == "add_to_cart") & (e.occurred_at >= start))
    adds = adds.select("event_id", "customer_id", added=snap.epoch(adds.occurred_at))
    orders = snap.table("orders")
    orders = orders.filter((orders.ordered_at >= start) & (orders.ordered_at < snap.as_of))
    orders = orders.select(buyer=orders.customer_id, paid=snap.epoch(orders.ordered_at))
    # Epoch seconds, not date arithmetic, so the same join runs on every engine.
    joined = adds.left_join(
        orders,
        [
            adds.customer_id == orders.buyer,
            orders.paid >= adds.added,
            orders.paid < adds.added + w.cart_hours * 3600,
        ],
    )
    per_add = joined.group_by(["event_id", "customer_id"]).agg(converted=joined.paid.count())
    agg = per_add.group_by("customer_id").agg(
        _abandoned=per_add.count(where=per_add.converted == 0), _adds=per_add.count()
    )
    rate = agg._abandoned.cast("float64") / agg._adds.cast("float64")
    return agg.select("customer_id", **{f"cart_abandonment_rate_{w.short_days}d": rate})


def expressions(snap: Snapshot) -> list[ir.Table]:
    """Return the behaviour group's queries, each keyed by ``customer_id``."""
    return [
        _counts(snap),
        _recency(snap),
        _browsing_since_last_order(snap),
        _cart_abandonment(snap),
    ]


GROUP = FeatureGroup(
    name=NAME,
    description="Behaviour: events by type, recency of activity, cart abandonment, "
    "searches, complaints and feedback.",
    features=features,
    expressions=expressions,
)
