"""Orders and their lines: which record, channel and store, what basket, discounts, refunds.

Each purchase of the latent process becomes one order. Baskets draw categories
from the person's persistent category mix and products by spend level
(products are sorted by price within a category, and a high spender's draw
leans towards the dear end). Festival days bring deeper and more frequent
discounts; discount-seekers get more of them. Refunds are more likely for
apparel and electronics and for dissatisfied people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.catalog import Catalog
from crm_ml.demo.population import People
from crm_ml.demo.profiles import DUPLICATE_PURCHASE_SHARE, Records
from crm_ml.demo.purchases import Purchases
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

#: Chance that a line is refunded for a typically satisfied person, by category.
REFUND_BASE = np.array([0.02, 0.03, 0.01, 0.10, 0.05, 0.04])
CONSUMABLE = np.array([True, False, True, False, False, False])


@dataclass
class Orders:
    """Orders in time order, and their lines (contiguous per order).

    Order arrays: ``person, record, day, offline, store`` (-1 online). Line arrays:
    ``line_order`` (order index), ``line_no``, ``product``, ``category``, ``quantity``,
    ``amount``, ``discount``, ``refund`` and ``refund_day`` (``nan`` if none).
    """

    person: I64
    record: I64
    day: F64
    offline: B
    store: I64
    line_order: I64
    line_no: I64
    product: I64
    category: I64
    quantity: I64
    amount: F64
    discount: F64
    refund: F64
    refund_day: F64

    @property
    def n(self) -> int:
        """Number of orders."""
        return int(self.day.size)

    def per_order(self, values: F64) -> F64:
        """Sum line ``values`` per order."""
        return np.bincount(self.line_order, weights=values, minlength=self.n).astype(np.float64)

    @property
    def net(self) -> F64:
        """What each order cost after discounts (before refunds)."""
        return self.per_order(self.amount - self.discount)

    @property
    def spend(self) -> F64:
        """What each order finally cost: net minus refunds."""
        return self.per_order(self.amount - self.discount - self.refund)


def _home_store(people: People, catalog: Catalog, rng: np.random.Generator) -> tuple[I64, B]:
    n_cities = int(max(catalog.store_city.max(initial=0), people.city.max(initial=0))) + 1
    count = np.bincount(catalog.store_city, minlength=n_cities)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    city = np.maximum(people.city, 0)
    local = (people.city >= 0) & (count[city] > 0)
    pick = first[city] + np.floor(rng.random(people.n) * np.maximum(count[city], 1)).astype(
        np.int64
    )
    anywhere = rng.integers(0, len(catalog.stores), people.n)
    return np.where(local, pick, anywhere), local


def _channels(
    person: I64, people: People, catalog: Catalog, rng: np.random.Generator
) -> tuple[B, I64]:
    home, local = _home_store(people, catalog, rng)
    offline = rng.random(person.size) < people.offline[person] * np.where(local[person], 1.0, 0.3)
    elsewhere = rng.random(person.size) < 0.15
    store = np.where(elsewhere, rng.integers(0, len(catalog.stores), person.size), home[person])
    return offline, np.where(offline, store, -1)


def _records(person: I64, day: F64, records: Records, rng: np.random.Generator) -> I64:
    dup = records.duplicate[person]
    since = np.where(dup >= 0, records.created[np.maximum(dup, 0)], np.inf)
    on_dup = (day > since) & (rng.random(person.size) < DUPLICATE_PURCHASE_SHARE)
    return np.where(on_dup, dup, records.primary[person])


def _basket(
    person: I64, people: People, catalog: Catalog, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    spend = people.spend[person]
    lines = np.minimum(1 + rng.poisson(0.25 + 0.25 * spend), 8)
    order = np.repeat(np.arange(person.size), lines)
    who = person[order]
    cum = np.cumsum(people.affinity[who], axis=1)
    category = np.minimum((rng.random(order.size)[:, None] > cum).sum(axis=1), 5)
    lo, hi = catalog.category_start[category], catalog.category_start[category + 1]
    tilt = rng.random(order.size) ** (2.0 / people.spend[who])
    product = np.minimum(lo + np.floor(tilt * (hi - lo)).astype(np.int64), hi - 1)
    extra = np.where(
        CONSUMABLE[category], rng.poisson(0.5, order.size), rng.random(order.size) < 0.08
    )
    first = np.concatenate([[0], np.cumsum(lines)[:-1]])
    return {
        "line_order": order,
        "line_no": np.arange(order.size) - first[order] + 1,
        "product": product,
        "category": category,
        "quantity": 1 + extra.astype(np.int64),
    }


def _discounts(
    order: I64, day: F64, amount: F64, deal: F64, timeline: Timeline, rng: np.random.Generator
) -> F64:
    promo = timeline.season[np.floor(day[order]).astype(np.int64)] >= 1.3
    deal = deal[order]
    chance = np.where(promo, 0.6 + 0.3 * deal, 0.25 + 0.3 * deal)
    rate = np.where(promo, rng.uniform(0.10, 0.30, order.size), rng.uniform(0.05, 0.20, order.size))
    return np.where(rng.random(order.size) < chance, np.round(amount * rate), 0.0)


def _refunds(
    lines: dict[str, np.ndarray],
    day: F64,
    people: People,
    person: I64,
    timeline: Timeline,
    rng: np.random.Generator,
) -> tuple[F64, F64]:
    order = lines["line_order"]
    chance = REFUND_BASE[lines["category"]] * (0.5 + 3.0 * people.dissatisfaction[person[order]])
    when = day[order] + rng.uniform(1.0, 14.0, order.size)
    refunded = (rng.random(order.size) < chance) & (when < timeline.n_days)
    return np.where(refunded, lines["amount"] - lines["discount"], 0.0), np.where(
        refunded, when, np.nan
    )


def build_orders(
    purchases: Purchases,
    people: People,
    records: Records,
    catalog: Catalog,
    timeline: Timeline,
    rng: np.random.Generator,
) -> Orders:
    """Turn observed purchases into orders and lines, in time order."""
    by_time = np.argsort(purchases.day, kind="stable")
    person, day = purchases.person[by_time], purchases.day[by_time]
    record = _records(person, day, records, rng)
    offline, store = _channels(person, people, catalog, rng)
    lines = _basket(person, people, catalog, rng)
    lines["amount"] = catalog.price[lines["product"]] * lines["quantity"]
    lines["discount"] = _discounts(
        lines["line_order"], day, lines["amount"], people.deal[person], timeline, rng
    )
    lines["refund"], lines["refund_day"] = _refunds(lines, day, people, person, timeline, rng)
    return Orders(person, record, day, offline, store, **lines)


def next_order(
    orders: Orders, who: I64, after: F64, before: F64, *, by_person: bool = False
) -> I64:
    """First order of each ``who`` strictly after ``after`` and before ``before`` (-1 if none).

    ``who`` are records, or people when ``by_person``.
    """
    owner = orders.person if by_person else orders.record
    span = float(np.ceil(orders.day.max(initial=0.0))) + 800.0
    by_owner = np.argsort(owner * span + orders.day, kind="stable")
    key = (owner * span + orders.day)[by_owner]
    if key.size == 0:
        return np.full(who.size, -1)
    pos = np.minimum(np.searchsorted(key, who * span + after, side="right"), key.size - 1)
    order = by_owner[pos]
    found = (owner[order] == who) & (orders.day[order] > after) & (orders.day[order] < before)
    return np.where(found, order, -1)


def order_frames(
    orders: Orders, records: Records, catalog: Catalog, timeline: Timeline, order_id: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``orders`` and ``order_item`` (``order_id`` numbers the orders in time order).

    Call after coupons have been applied, so discounts are final.
    """
    gross = orders.per_order(orders.amount)
    discount = orders.per_order(orders.discount)
    head = pd.DataFrame(
        {
            "order_id": order_id,
            "customer_id": records.customer_id.to_numpy()[orders.record],
            "ordered_at": timeline.timestamps(orders.day),
            "channel": np.where(orders.offline, "offline", "online"),
            "store_id": _text.pick(catalog.stores["store_id"].to_numpy(), orders.store),
            "gross_amount": gross,
            "discount_amount": discount,
            "net_amount": np.round(gross - discount, 2),
        }
    )
    refunded = ~np.isnan(orders.refund_day)
    lines = pd.DataFrame(
        {
            "order_id": order_id.to_numpy()[orders.line_order],
            "line_no": orders.line_no,
            "product_id": catalog.products["product_id"].to_numpy()[orders.product],
            "quantity": orders.quantity,
            "amount": orders.amount,
            "discount_amount": orders.discount,
            "refund_amount": orders.refund,
            "refunded_at": pd.Series(
                timeline.timestamps(np.where(refunded, orders.refund_day, 0.0))
            ).where(refunded),
        }
    )
    return head, lines
