"""Loyalty assets: points, tier, coupons and stored value.

Balances are sums of the append-only ledgers over postings before ``as_of``.
"""

from __future__ import annotations

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
            f"Points earned before as_of that expire in [as_of, as_of + {s} days), capped at "
            "the balance (at least 0).",
            0,
        ),
        _f(
            "tier_level",
            "int64",
            "level",
            "Level (tier.level) of the latest tier change before as_of; 0 if none.",
            0,
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
    expiring = (
        (p.kind == "earn")
        & (p.expires_at >= snap.as_of)
        & (p.expires_at < snap.bound(-w.short_days))
    )
    points = p.points.cast("int64")
    agg = p.group_by("customer_id").agg(
        points_balance=points.sum(),
        _earned=points.sum(where=recent & (p.kind == "earn")),
        _redeemed=points.sum(where=recent & (p.kind == "redeem")),
        _expiring=points.sum(where=expiring),
    )
    # Which earned points are still unspent is not recorded; the balance bounds it.
    cap = ibis.greatest(agg.points_balance, 0)
    return agg.select(
        "customer_id",
        "points_balance",
        **{
            f"points_earned_{w.recent_days}d": agg._earned.fill_null(0),
            f"points_redeemed_{w.recent_days}d": -agg._redeemed.fill_null(0),
            f"points_expiring_{w.short_days}d": ibis.least(agg._expiring.fill_null(0), cap),
        },
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
        tier_level=joined.level.fill_null(0),
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
    return [_points(snap), _tier(snap), _coupons(snap), _stored_value(snap)]


GROUP = FeatureGroup(
    name=NAME,
    description="Loyalty assets: points, tier and its movement, coupons, stored value.",
    features=features,
    expressions=expressions,
)
