"""Loyalty assets: points, tier, coupons and stored value.

Balances are sums of the append-only ledgers over postings before ``as_of``.

Points expiring follow the ledger's own rule, shared with
:mod:`crm_ml.analysis.points`: spending consumes earned lots first-in,
first-out; a lot is valid until its ``expires_at`` (exclusive), so a lot
with ``expires_at == as_of`` has already expired at ``as_of``; "expiring
within N days" means ``as_of < expires_at <= as_of + N days``.
"""

from __future__ import annotations

from datetime import timedelta

import ibis
import ibis.expr.types as ir

from crm_ml.features.backend import Snapshot
from crm_ml.features.spec import DType, Feature, FeatureGroup, FeatureWindows, Fill

NAME = "loyalty"
NAN = float("nan")


def _f(name: str, dtype: DType, unit: str, description: str, fill: Fill) -> Feature:
    return Feature(name, NAME, dtype, unit, description, fill)


def features(windows: FeatureWindows) -> list[Feature]:
    """Declare the loyalty group's features, in output order."""
    r, s = windows.recent_days, windows.short_days
    return [
        _f("points_balance", "int64", "points", "Sum of points postings.", 0),
        _f(f"points_earned_{r}d", "int64", "points", f"Points earned in the last {r} days.", 0),
        _f(
            f"points_redeemed_{r}d",
            "int64",
            "points",
            f"Points redeemed in the last {r} days (positive).",
            0,
        ),
        _f(
            f"points_expiring_{s}d",
            "int64",
            "points",
            f"Unspent points (spending consumes the oldest lots first) that expire in "
            f"(as_of, as_of + {s} days]; a lot expiring exactly at as_of has already expired.",
            0,
        ),
        _f(
            "tier_level",
            "float64",
            "level",
            "Level (tier.level) of the customer's tier at as_of, set by the latest tier change "
            "before it; NaN if the customer has no tier (or one missing from the tier table).",
            NAN,
        ),
        _f("days_since_tier_change", "float64", "days", "Days since the last tier change.", NAN),
        _f(
            "last_tier_change_direction",
            "int64",
            "direction",
            "Direction of the last tier change: +1 up, -1 down, 0 initial or none.",
            0,
        ),
        _f(f"coupons_issued_{r}d", "int64", "count", f"Coupons issued in the last {r} days.", 0),
        _f(
            f"coupons_redeemed_{r}d",
            "int64",
            "count",
            f"Coupons redeemed in the last {r} days.",
            0,
        ),
        _f(
            "coupon_redemption_rate",
            "float64",
            "ratio",
            "Coupons redeemed before as_of / coupons issued before as_of; NaN if none issued.",
            NAN,
        ),
        _f("stored_value_balance", "float64", "currency", "Stored-value (prepaid) balance.", 0.0),
        _f(
            f"stored_value_spent_{r}d",
            "float64",
            "currency",
            f"Stored value spent in the last {r} days.",
            0.0,
        ),
    ]


def _points(snap: Snapshot) -> ir.Table:
    p, w = snap.table("points_ledger"), snap.windows
    p = p.filter(p.posted_at < snap.as_of)
    recent = p.posted_at >= snap.bound(w.recent_days)
    points = p.points.cast("int64")
    agg = p.group_by("customer_id").agg(
        points_balance=points.sum(),
        _earned=points.sum(where=recent & (p.kind == "earn")),
        _redeemed=points.sum(where=recent & (p.kind == "redeem")),
    )
    return agg.select(
        "customer_id",
        "points_balance",
        **{
            f"points_earned_{w.recent_days}d": agg._earned.fill_null(0),
            f"points_redeemed_{w.recent_days}d": -agg._redeemed.fill_null(0),
        },
    )


def _unspent_lots(p: ir.Table) -> ir.Table:
    """Points left in each lot of ``p`` after first-in, first-out consumption.

    Lots are the positive postings, oldest first (same ``posted_at``: the
    earliest ``expires_at`` first, never-expiring last); the consumed points
    are the oldest ``C`` points earned, ``C`` being the negative postings' total,
    so a lot keeps ``max(earned_through - C, 0) - max(earned_before - C, 0)``
    (the rule of :func:`crm_ml.analysis.points.remaining_lots`). Lots of one
    customer with the same ``posted_at`` and ``expires_at`` are summed first, so
    the order is total and every engine gives the same cumulative sums.

    Returns
    -------
    ibis Table
        ``customer_id``, ``expires_at`` (NULL: never expires) and ``unspent`` (int64).
    """
    points = p.points.cast("int64")
    lots = p.filter(points > 0).group_by("customer_id", "posted_at", "expires_at")
    lots = lots.agg(points=points.sum())
    oldest_first = [lots.posted_at, lots.expires_at.isnull(), lots.expires_at]
    lots = lots.mutate(_through=lots.points.cumsum(group_by="customer_id", order_by=oldest_first))
    spent = p.filter(points < 0).group_by("customer_id").agg(_consumed=-points.sum())
    joined = lots.left_join(spent, lots.customer_id == spent.customer_id)
    consumed = joined._consumed.fill_null(0)
    before = joined._through - joined.points
    unspent = ibis.greatest(joined._through - consumed, 0) - ibis.greatest(before - consumed, 0)
    return joined.select("customer_id", "expires_at", unspent=unspent)


def _points_expiring(snap: Snapshot) -> ir.Table:
    p, days = snap.table("points_ledger"), snap.windows.short_days
    lots = _unspent_lots(p.filter(p.posted_at < snap.as_of))
    # (as_of, as_of + days] written with >= and < only (see backend): every engine
    # keeps timestamps to the microsecond, so "> t" is ">= t + 1 µs".
    tick = timedelta(microseconds=1)
    expiring = (lots.expires_at >= snap.as_of + tick) & (lots.expires_at < snap.bound(-days) + tick)
    return lots.group_by("customer_id").agg(
        **{f"points_expiring_{days}d": lots.unspent.sum(where=expiring).fill_null(0)}
    )


def _tier(snap: Snapshot) -> ir.Table:
    t = snap.table("tier_change")
    t = t.filter(t.changed_at < snap.as_of)
    latest_first = ibis.window(
        group_by=t.customer_id, order_by=[ibis.desc(t.changed_at), ibis.desc(t.to_tier)]
    )
    t = t.mutate(_rank=ibis.row_number().over(latest_first))
    t = t.filter(t._rank == 0)
    tiers = snap.raw("tier").select("tier_id", "level")
    joined = t.left_join(tiers, t.to_tier == tiers.tier_id)
    direction = ibis.cases((joined.direction == "up", 1), (joined.direction == "down", -1), else_=0)
    return joined.select(
        "customer_id",
        tier_level=joined.level.cast("float64"),
        days_since_tier_change=snap.days_before(joined.changed_at),
        last_tier_change_direction=direction,
    )


def _coupons(snap: Snapshot) -> ir.Table:
    c, r = snap.table("coupon"), snap.windows.recent_days
    c = c.filter(c.issued_at < snap.as_of)
    # Never NULL: Ibis counts with a predicate on Spark as SUM(CAST(p AS BIGINT)),
    # NULL (not 0) for a customer whose coupons are all unredeemed.
    redeemed = c.redeemed_at.notnull() & (c.redeemed_at < snap.as_of)
    agg = c.group_by("customer_id").agg(
        **{f"coupons_issued_{r}d": c.count(where=c.issued_at >= snap.bound(r))},
        **{f"coupons_redeemed_{r}d": c.count(where=redeemed & (c.redeemed_at >= snap.bound(r)))},
        _redeemed=c.count(where=redeemed),
        _issued=c.count(),
    )
    rate = agg._redeemed.cast("float64") / agg._issued.cast("float64")
    return agg.mutate(coupon_redemption_rate=rate).drop("_redeemed", "_issued")


def _stored_value(snap: Snapshot) -> ir.Table:
    v, r = snap.table("stored_value_ledger"), snap.windows.recent_days
    v = v.filter(v.posted_at < snap.as_of)
    spent = (v.kind == "spend") & (v.posted_at >= snap.bound(r))
    agg = v.group_by("customer_id").agg(
        stored_value_balance=v.amount.sum(), _spent=v.amount.abs().sum(where=spent)
    )
    return agg.select(
        "customer_id",
        "stored_value_balance",
        **{f"stored_value_spent_{r}d": agg._spent.fill_null(0.0)},
    )


def expressions(snap: Snapshot) -> list[ir.Table]:
    """Return the loyalty group's queries, each keyed by ``customer_id``."""
    return [_points(snap), _points_expiring(snap), _tier(snap), _coupons(snap), _stored_value(snap)]


GROUP = FeatureGroup(
    name=NAME,
    description="Loyalty assets: points, tier and its movement, coupons, stored value.",
    features=features,
    expressions=expressions,
)
