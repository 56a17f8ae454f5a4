"""Product and channel: what a customer buys, and where.

Spend per category is the line amount less its discount, over every order
before ``as_of``; a line whose product is unknown counts under ``(unknown)``.
A category was bought on the date of any order with a line in it (refunds
later do not undo the visit).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from crm_ml.features.backend import Snapshot
from crm_ml.features.spec import (
    MAJOR_CATEGORIES,
    DType,
    Feature,
    FeatureGroup,
    FeatureWindows,
    Fill,
)

NAME = "product"
NAN = float("nan")
UNKNOWN_CATEGORY = "(unknown)"


def _f(name: str, dtype: DType, unit: str, description: str, fill: Fill) -> Feature:
    return Feature(name, NAME, dtype, unit, description, fill)


def features(windows: FeatureWindows) -> list[Feature]:
    """Declare the product group's features, in output order."""
    affinities = [
        _f(
            f"affinity_{category}",
            "float64",
            "ratio",
            f"Share of item spend in {category}; NaN with no item spend.",
            NAN,
        )
        for category in MAJOR_CATEGORIES
    ]
    recency = [
        _f(
            f"days_since_{category}",
            "float64",
            "days",
            f"Days since the last order with a line in {category}; NaN if never.",
            NAN,
        )
        for category in MAJOR_CATEGORIES
    ]
    return [
        _f("categories_distinct", "int64", "count", "Distinct product categories bought.", 0),
        _f(
            "top_category_share",
            "float64",
            "ratio",
            "Share of item spend in the customer's largest category; NaN with no item spend.",
            NAN,
        ),
        *affinities,
        *recency,
        _f("online_share", "float64", "ratio", "Share of orders placed online.", NAN),
        _f("stores_distinct", "int64", "count", "Distinct physical stores ordered from.", 0),
    ]


def _lines(snap: Snapshot) -> ir.Table:
    orders = snap.table("orders")
    orders = orders.filter(orders.ordered_at < snap.as_of).select(
        "order_id", "customer_id", "ordered_at"
    )
    items = snap.raw("order_item")
    products = snap.raw("product").select("product_id", "category")
    lines = items.inner_join(orders, "order_id").left_join(
        products, items.product_id == products.product_id
    )
    return lines.select(
        "customer_id",
        "ordered_at",
        category=lines.category.fill_null(UNKNOWN_CATEGORY),
        spend=lines.amount - lines.discount_amount,
    )


def _categories(snap: Snapshot) -> ir.Table:
    lines = _lines(snap)
    per = lines.group_by(["customer_id", "category"]).agg(
        spend=lines.spend.sum(), last=lines.ordered_at.max()
    )
    agg = per.group_by("customer_id").agg(
        categories_distinct=per.count(),
        _top=per.spend.max(),
        _total=per.spend.sum(),
        **{f"_{c}": per.spend.sum(where=per.category == c) for c in MAJOR_CATEGORIES},
        **{f"_last_{c}": per["last"].max(where=per.category == c) for c in MAJOR_CATEGORIES},
    )
    total = agg._total.nullif(0.0)
    shares = {f"affinity_{c}": ibis.coalesce(agg[f"_{c}"], 0.0) / total for c in MAJOR_CATEGORIES}
    since = {f"days_since_{c}": snap.days_before(agg[f"_last_{c}"]) for c in MAJOR_CATEGORIES}
    return agg.select(
        "customer_id",
        "categories_distinct",
        top_category_share=agg._top / total,
        **shares,
        **since,
    )


def _channels(snap: Snapshot) -> ir.Table:
    orders = snap.table("orders")
    orders = orders.filter(orders.ordered_at < snap.as_of)
    agg = orders.group_by("customer_id").agg(
        _online=orders.count(where=orders.channel == "online"),
        _orders=orders.count(),
        stores_distinct=orders.store_id.nunique(),
    )
    return agg.select(
        "customer_id",
        "stores_distinct",
        online_share=agg._online.cast("float64") / agg._orders.cast("float64"),
    )


def expressions(snap: Snapshot) -> list[ir.Table]:
    """Return the product group's queries, each keyed by ``customer_id``."""
    return [_categories(snap), _channels(snap)]


GROUP = FeatureGroup(
    name=NAME,
    description="Product and channel: categories, category affinity, online share, stores.",
    features=features,
    expressions=expressions,
)
