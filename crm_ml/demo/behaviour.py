"""Behaviour events: browsing that fades before people leave, bursts before purchases, feedback.

- Background browsing (page views, product views, searches, cart adds) is a
  seasonal Poisson process per person, thinned over the 90 days before they
  leave and reduced to a trickle afterwards.
- Before each order come a few product views, searches and cart adds (more
  for online orders), spread over the preceding days.
- Some orders get feedback; complaints are the latent complaints of
  :mod:`crm_ml.demo.purchases` that happened while the person was still a customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.catalog import CATEGORIES, Catalog
from crm_ml.demo.orders import Orders
from crm_ml.demo.population import People
from crm_ml.demo.profiles import Records
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

FADE_DAYS = 90.0
Parts = tuple[I64, F64, I64, I64, I64]  # person, day, kind, product (-1 none), category
_CHANNELS = ("app", "mini_program", "web", "store")
_TYPES = np.array(["page_view", "product_view", "search", "add_to_cart", "feedback", "complaint"])
_BROWSE_MIX = np.array([0.45, 0.35, 0.12, 0.08])
_TEXT: dict[str, dict[str, tuple[str, ...] | str]] = {
    "zh_CN": {
        "pages": ("首页", "活动页", "会员中心", "积分商城", "购物车"),
        "search": (
            "奶粉 纸尿裤 婴儿推车",
            "精华 面膜 口红 防晒",
            "坚果 牛奶 零食礼包",
            "羽绒服 连衣裙 运动鞋",
            "蓝牙耳机 充电宝 手机",
            "四件套 空气炸锅 保温杯",
        ),
        "feedback": ("好评：质量很好", "物流很快，包装完好", "性价比高，会回购", "中评：一般般"),
        "complaint": ("物流太慢", "商品质量问题", "客服态度差", "退款迟迟未到账", "优惠券无法使用"),
        "desk": ("客服热线", "在线客服", "门店服务台"),
        "review": "订单评价",
        "product": "商品详情页",
        "search_box": "搜索",
    },
    "en": {
        "pages": ("home", "promotions", "member centre", "rewards", "basket"),
        "search": (
            "formula nappies pushchair",
            "serum sun cream lipstick",
            "nuts milk snacks",
            "coat jeans trainers",
            "earbuds charger tablet",
            "duvet air fryer bottle",
        ),
        "feedback": ("Great quality", "Fast delivery", "Good value, will buy again", "It's okay"),
        "complaint": (
            "late delivery",
            "faulty product",
            "rude service",
            "refund not received",
            "coupon did not work",
        ),
        "desk": ("phone helpline", "online chat", "store service desk"),
        "review": "order review",
        "product": "product page",
        "search_box": "search",
    },
}


def _browsing(
    people: People, death: F64, timeline: Timeline, rng: np.random.Generator
) -> tuple[I64, F64]:
    end = np.minimum(float(timeline.n_days), death + 180.0)
    who, day = timeline.poisson_times(people.browse_rate, people.signup, end, rng)
    to_leave = death[who] - day
    keep_p = np.where(to_leave > 0, np.clip(to_leave / FADE_DAYS, 0.15, 1.0), 0.05)
    keep = rng.random(who.size) < keep_p
    return who[keep], day[keep]


def _product_in_mix(
    person: I64, people: People, catalog: Catalog, rng: np.random.Generator
) -> tuple[I64, I64]:
    cum = np.cumsum(people.affinity[person], axis=1)
    category = np.minimum((rng.random(person.size)[:, None] > cum).sum(axis=1), len(CATEGORIES) - 1)
    lo, hi = catalog.category_start[category], catalog.category_start[category + 1]
    return lo + np.floor(rng.random(person.size) * (hi - lo)).astype(np.int64), category


def catalog_category(product: I64, catalog: Catalog) -> I64:
    """Category index of each product."""
    return (np.searchsorted(catalog.category_start, product, side="right") - 1).astype(np.int64)


def _before_orders(
    orders: Orders, people: People, catalog: Catalog, rng: np.random.Generator
) -> Parts:
    count = rng.poisson(np.where(orders.offline, 0.5, 2.0))
    order = np.repeat(np.arange(orders.n), count)
    lag = np.minimum(rng.exponential(1.5, order.size), 10.0)
    day = np.maximum(orders.day[order] - lag, people.signup[orders.person[order]])
    kind = rng.choice([1, 2, 3], size=order.size, p=[0.5, 0.25, 0.25])
    product = orders.product[np.searchsorted(orders.line_order, order)]
    category = catalog_category(product, catalog)
    return orders.person[order], day, kind, np.where(kind == 2, -1, product), category


def _feedback(orders: Orders, timeline: Timeline, rng: np.random.Generator) -> Parts:
    order = np.flatnonzero(rng.random(orders.n) < 0.06)
    day = orders.day[order] + rng.uniform(2.0, 10.0, order.size)
    order, day = order[day < timeline.n_days], day[day < timeline.n_days]
    product = orders.product[np.searchsorted(orders.line_order, order)]
    return (
        orders.person[order],
        day,
        np.full(order.size, 4),
        product,
        np.zeros(order.size, np.int64),
    )


def _vocabulary(
    text: dict[str, tuple[str, ...] | str],
) -> tuple[list[str], dict[str, tuple[int, int]]]:
    vocab: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    for key in ("pages", "feedback", "complaint", "desk"):
        spans[key] = (len(vocab), len(text[key]))
        vocab += list(text[key])
    for c, words in enumerate(text["search"]):
        spans[f"search{c}"] = (len(vocab), len(words.split()))
        vocab += words.split()
    for key in ("review", "product", "search_box"):
        spans[key] = (len(vocab), 1)
        vocab.append(str(text[key]))
    return vocab, spans


def _texts(
    kind: I64, category: I64, spans: dict[str, tuple[int, int]], rng: np.random.Generator
) -> tuple[I64, I64]:
    """Return each event's touchpoint and detail as indices into the vocabulary (-1: none)."""

    def draw(key: str) -> I64:
        first, count = spans[key]
        return first + rng.integers(0, count, kind.size)

    search_first = np.array([spans[f"search{c}"][0] for c in range(len(CATEGORIES))])
    search_count = np.array([spans[f"search{c}"][1] for c in range(len(CATEGORIES))])
    keyword = search_first[category] + np.floor(
        rng.random(kind.size) * search_count[category]
    ).astype(np.int64)
    touch = np.select(
        [kind == 0, kind == 2, kind == 4, kind == 5],
        [
            draw("pages"),
            np.full(kind.size, spans["search_box"][0]),
            np.full(kind.size, spans["review"][0]),
            draw("desk"),
        ],
        default=spans["product"][0],
    )
    detail = np.select(
        [kind == 2, kind == 4, kind == 5],
        [keyword, draw("feedback"), draw("complaint")],
        default=-1,
    )
    return touch, detail


def _channels(person: I64, kind: I64, people: People, chinese: bool) -> I64:
    """Index into ``_CHANNELS``: the person's app or mini-program/web; complaints also in store."""
    digital = np.where(people.app_user[person], 0, 1 if chinese else 2)
    in_store = (kind == 5) & (people.offline[person] > 0.5)
    return np.where(in_store, 3, digital)


def event_frame(
    people: People,
    records: Records,
    orders: Orders,
    death: F64,
    complaints: tuple[I64, F64],
    catalog: Catalog,
    timeline: Timeline,
    locale: str,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Rows of the ``behavior_event`` table in time order, without ``event_id``."""
    b_who, b_day = _browsing(people, death, timeline, rng)
    b_kind = rng.choice(4, size=b_who.size, p=_BROWSE_MIX)
    b_product, b_cat = _product_in_mix(b_who, people, catalog, rng)
    c_who, c_day = complaints
    parts = [
        (b_who, b_day, b_kind, np.where(np.isin(b_kind, [1, 3]), b_product, -1), b_cat),
        _before_orders(orders, people, catalog, rng),
        _feedback(orders, timeline, rng),
        (
            c_who,
            c_day,
            np.full(c_who.size, 5),
            np.full(c_who.size, -1),
            np.zeros(c_who.size, np.int64),
        ),
    ]
    person, day, kind, product, category = (np.concatenate([p[i] for p in parts]) for i in range(5))
    order = np.argsort(day, kind="stable")
    person, day, kind, product, category = (
        person[order],
        day[order],
        kind[order],
        product[order],
        category[order],
    )
    vocab, spans = _vocabulary(_TEXT[locale])
    touch, detail = _texts(kind, category, spans, rng)
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[records.primary[person]],
            "event_type": _TYPES[kind],
            "occurred_at": timeline.timestamps(day),
            "channel": _text.pick(_CHANNELS, _channels(person, kind, people, locale == "zh_CN")),
            "touchpoint": _text.pick(vocab, touch),
            "product_id": _text.pick(catalog.products["product_id"].to_numpy(), product),
            "detail": _text.pick(vocab, detail),
        }
    )
