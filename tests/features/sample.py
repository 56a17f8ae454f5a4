"""A small store that exercises every feature group and every boundary.

``AS_OF`` is 2024-07-01 00:00. Rows at exactly ``AS_OF`` and after it are
present in every table and must never count; one order sits a microsecond
before ``AS_OF`` and must count. Merges: c3 -> c2 via ``customer_merge`` (c3's
history not re-keyed), c4 -> c2 via ``customer.merged_into`` only, and a
chain c5 -> c3 -> c2.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

AS_OF = datetime(2024, 7, 1)
JUST_BEFORE = AS_OF - timedelta(microseconds=1)
AFTER = AS_OF + timedelta(days=3)


def d(text: str) -> datetime:
    """A timestamp from ``YYYY-MM-DD[ HH:MM[:SS]]``."""
    return datetime.fromisoformat(text)


def _customers() -> list[dict[str, Any]]:
    return [
        dict(
            customer_id="c1",
            gender="F",
            birth_date=d("1990-05-01"),
            city_tier=1,
            acquisition_channel="app",
            is_member=True,
            member_since=d("2022-02-01"),
            created_at=d("2022-01-10 08:30"),
        ),
        dict(
            customer_id="c2",
            gender="男",
            acquisition_channel="wechat_ad",
            is_member=True,
            member_since=d("2024-09-01"),
            created_at=d("2023-03-01"),
        ),
        dict(
            customer_id="c3",
            gender="女",
            status="merged",
            merged_into="c2",
            created_at=d("2022-06-01"),
        ),
        dict(customer_id="c4", status="merged", merged_into="c2", created_at=d("2023-05-05")),
        dict(customer_id="c5", status="merged", created_at=d("2023-01-01")),
        dict(customer_id="c6", gender="female", created_at=AFTER),
        dict(
            customer_id="c7",
            birth_date=d("1960-02-29"),
            city_tier=3,
            is_member=False,
            acquisition_channel="store",
            created_at=d("2024-06-30 23:00"),
        ),
        dict(customer_id="c8", created_at=AS_OF),
        dict(
            customer_id="c9",
            gender="male",
            birth_date=d("2001-07-01"),
            city_tier=1,
            acquisition_channel="web",
            created_at=d("2021-03-03"),
        ),
        dict(
            customer_id="c10",
            gender=" Female ",
            birth_date=d("1980-01-01"),
            created_at=d("2024-01-15"),
        ),
    ]


def _identity() -> dict[str, list[dict[str, Any]]]:
    return {
        "customer_merge": [
            dict(merged_id="c3", surviving_id="c2", merged_at=d("2024-03-01")),
            dict(merged_id="c5", surviving_id="c3", merged_at=d("2024-08-01")),
        ],
        "customer_change": [
            dict(
                change_id="ch1",
                customer_id="c9",
                field="gender",
                old_value="female",
                new_value="male",
                changed_at=d("2024-08-01"),
            ),
            dict(
                change_id="ch2",
                customer_id="c9",
                field="gender",
                old_value="unknown",
                new_value="female",
                changed_at=d("2024-01-01"),
            ),
            dict(
                change_id="ch3",
                customer_id="c9",
                field="city_tier",
                old_value="3",
                new_value="1",
                changed_at=AS_OF,
            ),
            dict(
                change_id="ch4",
                customer_id="c9",
                field="city_tier",
                old_value="2",
                new_value="3",
                changed_at=d("2024-09-01"),
            ),
            dict(
                change_id="ch5",
                customer_id="c1",
                field="acquisition_channel",
                old_value=None,
                new_value="app",
                changed_at=d("2024-07-02"),
            ),
        ],
        "customer_owner": [
            dict(customer_id=c, valid_from=f, valid_to=t, owner_id=o)
            for c, f, t, o in [
                ("c1", d("2023-01-01"), AS_OF, "owner1"),
                ("c9", d("2023-01-01"), d("2024-06-30"), "owner1"),
                ("c9", AS_OF, None, "owner2"),
                ("c4", d("2024-01-01"), None, "owner1"),
            ]
        ],
        "consent": [
            dict(customer_id=c, channel=ch, purpose=p, updated_at=at, status=s)
            for c, ch, p, at, s in [
                ("c1", "sms", "marketing", d("2023-01-01"), "granted"),
                ("c1", "sms", "marketing", AS_OF, "withdrawn"),
                ("c1", "email", "marketing", d("2023-01-01"), "granted"),
                ("c1", "email", "marketing", d("2024-02-01"), "withdrawn"),
                ("c1", "wechat", "service", d("2023-01-01"), "granted"),
                ("c3", "wechat", "marketing", d("2023-01-01"), "granted"),
                ("c2", "wechat", "marketing", d("2023-01-01"), "withdrawn"),
                ("c9", "email", "marketing", d("2024-05-01"), "unknown"),
            ]
        ],
    }


def _catalogue() -> dict[str, list[dict[str, Any]]]:
    cats = ["maternity_baby", "beauty", "food", "apparel", "electronics", "home", "toys"]
    return {
        "product": [dict(product_id=f"p{i}", category=c) for i, c in enumerate(cats, start=1)],
        "store_location": [dict(store_id="s1"), dict(store_id="s2")],
        "tier": [
            dict(tier_id="silver", name="silver", level=1, min_spend_12m=0.0),
            dict(tier_id="gold", name="gold", level=2, min_spend_12m=1000.0),
            dict(tier_id="black", name="black", level=3, min_spend_12m=5000.0),
        ],
    }


_ORDERS = [
    # order_id, customer, ordered_at, channel, store, gross, discount
    ("o1", "c1", d("2023-01-05 10:00"), "offline", "s1", 120.0, 20.0),
    ("o2", "c1", d("2023-12-20 12:00"), "offline", "s2", 60.0, 0.0),
    ("o3", "c1", d("2024-04-10 09:15"), "online", None, 300.5, 0.5),
    ("o4", "c1", d("2024-06-15 18:00"), "online", None, 80.0, 8.0),
    ("o5", "c1", JUST_BEFORE, "online", None, 45.0, 0.0),
    ("o6", "c1", AS_OF, "online", None, 999.0, 0.0),
    ("o7", "c1", AFTER, "online", None, 50.0, 0.0),
    ("o8", "c2", d("2024-05-01"), "offline", "s1", 200.0, 0.0),
    ("o9", "c3", d("2022-12-01"), "online", None, 40.0, 0.0),
    ("o10", "c4", d("2024-06-01"), "online", None, 10.0, 0.0),
    ("o11", "c5", d("2023-06-01"), "online", None, 70.0, 0.0),
    ("o12", "c9", d("2024-06-20 11:00"), "online", None, 0.0, 0.0),
    ("o13", "c6", d("2024-06-01"), "online", None, 30.0, 0.0),
    ("o14", "c10", d("2024-03-01 10:00"), "online", None, 25.0, 0.0),
    ("o15", "c10", d("2024-03-08 10:00"), "online", None, 25.0, 0.0),
    ("o16", "c10", d("2024-03-15 10:00"), "online", None, 25.0, 0.0),
]
_ITEMS = [
    # order_id, line_no, product, amount, discount, refund, refunded_at
    ("o1", 1, "p1", 70.0, 10.0, 0.0, None),
    ("o1", 2, "p2", 50.0, 10.0, 50.0, d("2023-01-20")),
    ("o2", 1, "p3", 60.0, 0.0, 0.0, None),
    ("o3", 1, "p1", 300.5, 0.5, 100.0, AS_OF),
    ("o4", 1, "p7", 80.0, 8.0, 0.0, None),
    ("o4", 2, "p404", 0.0, 0.0, 0.0, None),
    ("o5", 1, "p6", 45.0, 0.0, 0.0, None),
    ("o6", 1, "p5", 999.0, 0.0, 0.0, None),
    ("o8", 1, "p4", 200.0, 0.0, 20.0, d("2024-05-02")),
    ("o9", 1, "p4", 40.0, 0.0, 0.0, None),
    ("o10", 1, "p2", 10.0, 0.0, 0.0, None),
    ("o11", 1, "p3", 70.0, 0.0, 0.0, None),
    ("o12", 1, "p3", 0.0, 0.0, 0.0, None),
    ("o14", 1, "p2", 25.0, 0.0, 0.0, None),
    ("o15", 1, "p2", 25.0, 0.0, 0.0, None),
    ("o16", 1, "p2", 25.0, 0.0, 0.0, None),
]


def _orders() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    orders = [
        dict(
            order_id=o,
            customer_id=c,
            ordered_at=at,
            channel=ch,
            store_id=s,
            gross_amount=g,
            discount_amount=x,
        )
        for o, c, at, ch, s, g, x in _ORDERS
    ]
    items = [
        dict(
            order_id=o,
            line_no=n,
            product_id=p,
            amount=a,
            discount_amount=x,
            refund_amount=r,
            refunded_at=ra,
        )
        for o, n, p, a, x, r, ra in _ITEMS
    ]
    return orders, items


def _events() -> list[dict[str, Any]]:
    rows = [
        ("e1", "c1", "page_view", d("2024-06-25")),
        ("e2", "c1", "page_view", d("2024-04-20")),
        ("e3", "c1", "product_view", d("2024-06-30 20:00")),
        ("e4", "c1", "add_to_cart", d("2024-06-15 12:00")),  # order o4 6 h later: converted
        ("e5", "c1", "add_to_cart", d("2024-06-20 12:00")),  # abandoned
        ("e6", "c1", "add_to_cart", d("2024-06-30 12:00")),  # o5 within 24 h: converted
        ("e7", "c1", "search", d("2024-06-29")),
        ("e8", "c1", "search", d("2024-05-01")),
        ("e9", "c1", "complaint", d("2024-05-10")),
        ("e10", "c1", "feedback", d("2024-02-01")),
        ("e11", "c1", "complaint", AS_OF),
        ("e12", "c1", "page_view", AS_OF),
        ("e13", "c1", "add_to_cart", AFTER),
        ("e14", "c3", "complaint", d("2024-06-01")),
        ("e15", "c2", "add_to_cart", d("2024-06-10")),
        ("e16", "c5", "search", d("2024-06-30")),
        ("e17", "c9", "add_to_cart", d("2024-06-20 10:00")),  # o12 1 h later: converted
        ("e18", "c9", "add_to_cart", d("2024-05-01")),  # outside 30 days
    ]
    return [dict(event_id=i, customer_id=c, event_type=t, occurred_at=at) for i, c, t, at in rows]


def _loyalty() -> dict[str, list[dict[str, Any]]]:
    points = [
        ("pt1", "c1", d("2023-01-05"), "earn", 100, d("2024-07-20")),
        ("pt2", "c1", d("2024-05-01"), "earn", 50, d("2025-05-01")),
        ("pt3", "c1", d("2024-06-01"), "redeem", -30, None),
        ("pt4", "c1", d("2024-02-01"), "expire", -10, None),
        ("pt5", "c1", AS_OF, "earn", 500, d("2024-07-10")),
        ("pt6", "c2", d("2024-05-01"), "earn", 20, d("2024-07-15")),
        ("pt7", "c3", d("2024-03-01"), "earn", 40, AS_OF),
        ("pt8", "c3", d("2024-04-01"), "redeem", -45, None),
        ("pt9", "c4", d("2024-06-01"), "adjust", 5, None),
        ("pt10", "c9", d("2024-06-01"), "earn", 10, d("2024-07-31")),
    ]
    tiers = [
        ("c1", d("2022-02-01"), None, "silver", "initial"),
        ("c1", d("2023-06-01"), "silver", "gold", "up"),
        ("c1", d("2024-05-01"), "gold", "silver", "down"),
        ("c1", AS_OF, "silver", "black", "up"),
        ("c3", d("2023-01-01"), None, "gold", "initial"),
        ("c2", d("2024-06-01"), None, "silver", "initial"),
        ("c9", d("2024-01-01"), None, "gold", "initial"),
    ]
    coupons = [
        ("k1", "c1", d("2024-05-01"), d("2024-05-03")),
        ("k2", "c1", d("2024-06-01"), AS_OF),
        ("k3", "c1", d("2023-01-01"), d("2023-01-02")),
        ("k4", "c1", AS_OF, None),
        ("k5", "c4", d("2024-06-01"), None),
    ]
    stored = [
        ("sv1", "c1", d("2024-01-01"), "top_up", 500.0),
        ("sv2", "c1", d("2024-06-01"), "spend", -120.0),
        ("sv3", "c1", d("2024-01-15"), "spend", -80.0),
        ("sv4", "c1", AS_OF, "spend", -200.0),
        ("sv5", "c3", d("2024-06-10"), "top_up", 100.0),
    ]
    return {
        "points_ledger": [
            dict(entry_id=e, customer_id=c, posted_at=at, kind=k, points=p, expires_at=x)
            for e, c, at, k, p, x in points
        ],
        "tier_change": [
            dict(customer_id=c, changed_at=at, from_tier=f, to_tier=t, direction=dr)
            for c, at, f, t, dr in tiers
        ],
        "coupon": [
            dict(coupon_id=k, customer_id=c, issued_at=i, redeemed_at=r) for k, c, i, r in coupons
        ],
        "stored_value_ledger": [
            dict(entry_id=e, customer_id=c, posted_at=at, kind=k, amount=a)
            for e, c, at, k, a in stored
        ],
    }


def _campaigns() -> dict[str, list[dict[str, Any]]]:
    camp = dict(channel="sms", start_at=d("2023-01-01"), end_at=d("2025-01-01"))
    contacts = [
        ("m1", "c1", d("2024-06-01"), True, d("2024-06-02"), "treatment"),
        ("m2", "c1", d("2024-03-01"), False, None, "treatment"),
        ("m3", "c1", d("2024-06-20"), True, AS_OF, "treatment"),
        ("m4", "c1", d("2024-06-25"), True, None, "control"),
        ("m5", "c3", d("2024-05-01"), True, None, "treatment"),
        ("m6", "c2", AS_OF, True, AS_OF, "treatment"),
    ]
    return {
        "campaign": [dict(campaign_id=m, name=m, **camp) for m, *_ in contacts],
        "campaign_contact": [
            dict(
                campaign_id=m,
                customer_id=c,
                contacted_at=at,
                responded=r,
                responded_at=ra,
                contact_group=g,
            )
            for m, c, at, r, ra, g in contacts
        ],
    }


def sample_tables() -> dict[str, list[dict[str, Any]]]:
    """Every table of the sample store, as lists of (incomplete) rows."""
    orders, items = _orders()
    return {
        "customer": _customers(),
        **_identity(),
        **_catalogue(),
        "orders": orders,
        "order_item": items,
        "behavior_event": _events(),
        **_loyalty(),
        **_campaigns(),
    }


# --------------------------------------------------------------------------- random stores


def _random_time(rng: Any, start: datetime, days: int) -> datetime:
    """A time in ``[start, start + days)``; one in eight lands exactly on ``AS_OF``."""
    if rng.random() < 0.125:
        return AS_OF
    seconds = rng.randrange(days * 86400)
    return start + timedelta(seconds=seconds, microseconds=rng.choice([0, 0, 1, 999_999]))


def random_tables(seed: int = 0, customers: int = 40) -> dict[str, list[dict[str, Any]]]:
    """A seeded random store around ``AS_OF`` with every table filled, for parity tests."""
    rng = random.Random(seed)
    start = AS_OF - timedelta(days=500)
    ids = [f"r{i:03d}" for i in range(customers)]
    people = []
    for cid in ids:
        people.append(
            dict(
                customer_id=cid,
                gender=rng.choice(["F", "M", None, "女", "x"]),
                birth_date=rng.choice([None, d("1970-03-04"), d("1999-12-31")]),
                city_tier=rng.choice([None, 1, 2, 5]),
                acquisition_channel=rng.choice([None, "app", "store", "tv"]),
                is_member=rng.random() < 0.5,
                created_at=_random_time(rng, start, 520),
            )
        )
    merges = []
    for merged, survivor in zip(ids[:4], ids[4:8], strict=True):
        merges.append(dict(merged_id=merged, surviving_id=survivor))
        people[ids.index(merged)]["status"] = "merged"
    tables = {"customer": people, "customer_merge": merges, **_catalogue()}
    tables.update(_random_orders(rng, ids, start))
    tables.update(_random_assets(rng, ids, start))
    tables["tier_change"] = _random_tiers(rng, ids, start)
    tables["consent"] = _random_consents(rng, ids, start)
    tables["customer_owner"] = _random_owners(rng, ids, start)
    tables["campaign_contact"] = _random_contacts(rng, ids, start)
    # The data runs on half a year past AS_OF, so label windows from AS_OF of up to 180 days
    # are covered (labels refuse a window that ends after the last order's day).
    last = AS_OF + timedelta(days=180)
    tables["orders"].append(
        dict(order_id="ro_last", customer_id=ids[-1], ordered_at=last, gross_amount=10.0)
    )
    return tables


def _random_orders(rng: Any, ids: list[str], start: datetime) -> dict[str, list[dict[str, Any]]]:
    orders, items, events = [], [], []
    for n in range(len(ids) * 6):
        at = _random_time(rng, start, 560)
        gross = round(rng.uniform(0, 500), 2)
        discount = round(rng.uniform(0, gross / 4), 2)
        refunded_at = rng.choice([None, at + timedelta(days=rng.randrange(1, 40))])
        orders.append(
            dict(
                order_id=f"ro{n}",
                customer_id=rng.choice(ids),
                ordered_at=at,
                gross_amount=gross,
                discount_amount=discount,
                channel=rng.choice(["online", "offline"]),
                store_id=rng.choice([None, "s1", "s2"]),
            )
        )
        items.append(
            dict(
                order_id=f"ro{n}",
                line_no=1,
                product_id=f"p{rng.randrange(1, 9)}",
                amount=gross,
                discount_amount=discount,
                refund_amount=round(gross / 2, 2) if refunded_at else 0.0,
                refunded_at=refunded_at,
            )
        )
    kinds = ["page_view", "product_view", "search", "add_to_cart", "feedback", "complaint"]
    for n in range(len(ids) * 10):
        events.append(
            dict(
                event_id=f"re{n}",
                customer_id=rng.choice(ids),
                event_type=rng.choice(kinds),
                occurred_at=_random_time(rng, start, 560),
            )
        )
    return {"orders": orders, "order_item": items, "behavior_event": events}


def _random_assets(rng: Any, ids: list[str], start: datetime) -> dict[str, list[dict[str, Any]]]:
    points, coupons, stored = [], [], []
    for n in range(len(ids) * 4):
        kind = rng.choice(["earn", "earn", "redeem", "expire", "adjust"])
        amount = rng.randrange(1, 300) * (1 if kind in ("earn", "adjust") else -1)
        at = _random_time(rng, start, 560)
        points.append(
            dict(
                entry_id=f"rp{n}",
                customer_id=rng.choice(ids),
                posted_at=at,
                kind=kind,
                points=amount,
                expires_at=at + timedelta(days=rng.randrange(1, 400)),
            )
        )
        issued = _random_time(rng, start, 560)
        redeemed = rng.choice([None, issued + timedelta(days=rng.randrange(0, 60))])
        coupons.append(
            dict(
                coupon_id=f"rk{n}",
                customer_id=rng.choice(ids),
                issued_at=issued,
                redeemed_at=redeemed,
            )
        )
        kind = rng.choice(["top_up", "spend"])
        amount = round(rng.uniform(1, 200), 2) * (1 if kind == "top_up" else -1)
        stored.append(
            dict(
                entry_id=f"rs{n}",
                customer_id=rng.choice(ids),
                posted_at=_random_time(rng, start, 560),
                kind=kind,
                amount=amount,
            )
        )
    return {"points_ledger": points, "coupon": coupons, "stored_value_ledger": stored}


def _random_contacts(rng: Any, ids: list[str], start: datetime) -> list[dict[str, Any]]:
    rows = []
    for cid in ids:
        for m in range(rng.randrange(0, 4)):
            at = _random_time(rng, start, 560)
            rows.append(
                dict(
                    campaign_id=f"rc{m}",
                    customer_id=cid,
                    contacted_at=at,
                    contact_group=rng.choice(["treatment", "treatment", "control"]),
                    responded=rng.random() < 0.4,
                    responded_at=rng.choice([None, at + timedelta(days=2)]),
                )
            )
    return rows


def _random_tiers(rng: Any, ids: list[str], start: datetime) -> list[dict[str, Any]]:
    rows, order = [], ["silver", "gold", "black"]
    for cid in ids:
        times = sorted({_random_time(rng, start, 560) for _ in range(rng.randrange(0, 4))})
        level = 0
        for i, at in enumerate(times):
            new = rng.randrange(3) if i == 0 else max(0, min(2, level + rng.choice([-1, 1])))
            direction = "initial" if i == 0 else ("up" if new > level else "down")
            rows.append(
                dict(customer_id=cid, changed_at=at, to_tier=order[new], direction=direction)
            )
            level = new
    return rows


def _random_consents(rng: Any, ids: list[str], start: datetime) -> list[dict[str, Any]]:
    rows = []
    for cid in ids:
        for channel in ("sms", "email", "wechat"):
            for at in {_random_time(rng, start, 560) for _ in range(rng.randrange(0, 3))}:
                rows.append(
                    dict(
                        customer_id=cid,
                        channel=channel,
                        updated_at=at,
                        status=rng.choice(["granted", "withdrawn", "unknown"]),
                    )
                )
    return rows


def _random_owners(rng: Any, ids: list[str], start: datetime) -> list[dict[str, Any]]:
    rows = []
    for cid in ids:
        if rng.random() < 0.4:
            begin = _random_time(rng, start, 560)
            end = rng.choice([None, begin + timedelta(days=rng.randrange(1, 200)), AS_OF])
            rows.append(
                dict(
                    customer_id=cid,
                    valid_from=begin,
                    valid_to=None if end and end <= begin else end,
                )
            )
    return rows
