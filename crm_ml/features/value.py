"""Value and RFM: recency, frequency and spend over windows, purchase rhythm, refunds, discounts.

Revenue is what the customer paid (``orders.net_amount``) less what was
refunded on the order before ``as_of``, floored at zero per order and counted on
the order's date: the same value the lists and analyses use
(:func:`crm_ml.analysis._read.order_revenue`). A refund made after ``as_of`` is
unknown then and changes nothing. ``refund_rate`` measures refunds on their own.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from crm_ml.features.backend import SECONDS_PER_DAY, Snapshot
from crm_ml.features.identity import population
from crm_ml.features.spec import DType, Feature, FeatureGroup, FeatureWindows, Fill

NAME = "value"
NAN = float("nan")


def _f(name: str, dtype: DType, unit: str, description: str, fill: Fill) -> Feature:
    return Feature(name, NAME, dtype, unit, description, fill)


def features(windows: FeatureWindows) -> list[Feature]:
    """Declare the value group's features, in output order."""
    r = windows.recent_days
    out = [_f("recency_days", "float64", "days", "Days since the last order; NaN if none.", NAN)]
    for days in windows.value_days:
        out.append(_f(f"orders_{days}d", "int64", "count", f"Orders in the last {days} days.", 0))
    out.append(_f("orders_lifetime", "int64", "count", "Orders before as_of.", 0))
    for days in windows.value_days:
        out.append(
            _f(
                f"revenue_{days}d",
                "float64",
                "currency",
                f"Paid in the last {days} days, net of refunds made before as_of.",
                0.0,
            )
        )
    return [
        *out,
        _f(
            "revenue_lifetime",
            "float64",
            "currency",
            "Paid before as_of, net of discounts and refunds.",
            0.0,
        ),
        _f("avg_order_value", "float64", "currency", "revenue_lifetime / orders_lifetime.", NAN),
        _f("tenure_days", "float64", "days", "Days since the customer was created.", NAN),
        _f(
            "days_since_first_order",
            "float64",
            "days",
            "Days since the first order (merged records' orders included); NaN if none. "
            "Unlike tenure_days, not moved by a registration long before the first purchase.",
            NAN,
        ),
        _f(
            "interpurchase_mean_days",
            "float64",
            "days",
            "Mean days between consecutive orders; NaN with fewer than 2 orders.",
            NAN,
        ),
        _f(
            "interpurchase_std_days",
            "float64",
            "days",
            "Sample standard deviation of days between orders; NaN with fewer than 3 orders.",
            NAN,
        ),
        _f(
            "recency_ratio",
            "float64",
            "ratio",
            "recency_days / interpurchase_mean_days: above 1 means overdue by the customer's "
            "own rhythm; NaN when the mean is undefined or zero.",
            NAN,
        ),
        _f(
            f"revenue_trend_{r}d",
            "float64",
            "currency",
            f"Difference: revenue of the last {r} days minus revenue of the {r} days before "
            "(negative = spending less).",
            0.0,
        ),
        _f(
            "refund_rate",
            "float64",
            "ratio",
            "Refunded amount (refunds dated before as_of) / line amount of orders before as_of.",
            NAN,
        ),
        _f(
            "discount_share",
            "float64",
            "ratio",
            "Order discounts / gross order amount, lifetime.",
            NAN,
        ),
        _f(
            "max_basket_value",
            "float64",
            "currency",
            "Largest single order paid, net of its refunds.",
            NAN,
        ),
    ]


def _orders(snap: Snapshot) -> ir.Table:
    orders = snap.table("orders")
    return orders.filter(orders.ordered_at < snap.as_of)


def _line_totals(snap: Snapshot) -> ir.Table:
    items = snap.raw("order_item")
    return items.group_by("order_id").agg(
        _lines=items.amount.sum(),
        # A refund counts only once it has happened: refunded_at < as_of.
        _refunded=items.refund_amount.sum(where=items.refunded_at < snap.as_of),
    )


def _order_summary(snap: Snapshot) -> ir.Table:
    w = snap.windows
    o = _orders(snap)
    o = o.left_join(_line_totals(snap), "order_id")
    # What the order is worth at as_of: a fully refunded order buys nothing.
    o = o.mutate(_paid=ibis.greatest(o.net_amount - o._refunded.fill_null(0.0), 0.0))
    r = w.recent_days
    recent = o.ordered_at >= snap.bound(r)
    before = (o.ordered_at >= snap.bound(2 * r)) & (o.ordered_at < snap.bound(r))
    agg = o.group_by("customer_id").agg(
        **{f"orders_{d}d": o.count(where=o.ordered_at >= snap.bound(d)) for d in w.value_days},
        **{f"revenue_{d}d": o._paid.sum(where=o.ordered_at >= snap.bound(d)) for d in w.value_days},
        orders_lifetime=o.count(),
        revenue_lifetime=o._paid.sum(),
        _recent=o._paid.sum(where=recent),
        _before=o._paid.sum(where=before),
        _gross=o.gross_amount.sum(),
        _discount=o.discount_amount.sum(),
        _lines=o._lines.sum(),
        _refunded=o._refunded.sum(),
        max_basket_value=o._paid.max(),
        _first=o.ordered_at.min(),
        _last=o.ordered_at.max(),
    )
    mean = snap.days_between(agg._last, agg._first) / (agg.orders_lifetime - 1).nullif(0)
    recency = snap.days_before(agg._last)
    derived = {
        "recency_days": recency,
        "days_since_first_order": snap.days_before(agg._first),
        "avg_order_value": agg.revenue_lifetime / agg.orders_lifetime,
        "interpurchase_mean_days": mean,
        "recency_ratio": recency / mean.nullif(0.0),
        "discount_share": agg._discount / agg._gross.nullif(0.0),
        "refund_rate": agg._refunded.fill_null(0.0) / agg._lines.nullif(0.0),
        f"revenue_trend_{r}d": agg._recent.fill_null(0.0) - agg._before.fill_null(0.0),
    }
    kept = [c for c in agg.columns if not c.startswith("_")]
    return agg.select(*kept, **derived)


def _interpurchase_spread(snap: Snapshot) -> ir.Table:
    o = _orders(snap)
    at = snap.epoch(o.ordered_at)
    rhythm = ibis.window(group_by=o.customer_id, order_by=[o.ordered_at, o.order_id])
    gaps = o.select("customer_id", gap=(at - at.lag().over(rhythm)).cast("float64"))
    gaps = gaps.filter(gaps.gap.notnull()).mutate(gap=gaps.gap / SECONDS_PER_DAY)
    # The engines' own (Welford) variance keeps equal gaps at exactly 0. Population
    # variance scaled by k/(k-1): SQLite's sample variance fails on a single gap.
    agg = gaps.group_by("customer_id").agg(_var=gaps.gap.var(how="pop"), _k=gaps.count())
    k = agg._k.cast("float64")
    std = (agg._var * k / (k - 1.0).nullif(0.0)).sqrt()
    return agg.select("customer_id", interpurchase_std_days=std)


def _tenure(snap: Snapshot) -> ir.Table:
    people = population(snap)
    return people.select("customer_id", tenure_days=snap.days_before(people.created_at))


def expressions(snap: Snapshot) -> list[ir.Table]:
    """Return the value group's queries, each keyed by ``customer_id``."""
    return [_order_summary(snap), _interpurchase_spread(snap), _tenure(snap)]


GROUP = FeatureGroup(
    name=NAME,
    description="Value and RFM: recency, orders and revenue over windows, rhythm, refunds.",
    features=features,
    expressions=expressions,
)
