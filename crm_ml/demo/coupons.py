"""Coupons: a welcome coupon on joining, campaign coupons, birthday coupons; and their use.

A coupon is redeemed on the holder's first order after it is issued and before
it expires (if the order is big enough), with a probability that depends on
the person's response type. Holding a welcome or campaign coupon raises the
purchase rate while it is valid (the windows of :mod:`crm_ml.demo.purchases`);
the redeemed coupon's face value is taken off the order's first line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.campaigns import Contacts
from crm_ml.demo.orders import Orders, next_order
from crm_ml.demo.population import People
from crm_ml.demo.profiles import Records
from crm_ml.demo.purchases import Windows
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

WELCOME_DAYS, WELCOME_FACTOR, WELCOME_FACE = 30.0, 1.5, 20.0
BIRTHDAY_FACE = 30.0
#: Chance of using a coupon on a qualifying order, by response type (never, responder, put off).
REDEEM_P = np.array([0.5, 0.9, 0.2])


@dataclass
class Coupons:
    """Issued coupons: holder record, campaign row (-1 if none), days, face value, order used on."""

    record: I64
    campaign: I64
    issued: F64
    expires: F64
    face: F64
    order: I64

    def __add__(self, other: Coupons) -> Coupons:
        return Coupons(
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.__annotations__)
        )


def welcome_windows(people: People) -> Windows:
    """People who join at sign-up hold a welcome coupon for their first month."""
    who = np.flatnonzero(people.joins_at_signup)
    start = people.signup[who]
    return Windows(who, start, start + WELCOME_DAYS, np.full(who.size, WELCOME_FACTOR), start)


def _issue(
    record: I64, campaign: I64 | int, issued: F64, days: F64 | float, face: F64 | float
) -> Coupons:
    n = record.size
    return Coupons(
        record,
        np.broadcast_to(campaign, n).astype(np.int64),
        issued,
        issued + days,
        np.broadcast_to(face, n).astype(np.float64),
        np.full(n, -1),
    )


def issue_coupons(
    records: Records,
    people: People,
    contacts: Contacts,
    plan: pd.DataFrame,
    orders: Orders,
    timeline: Timeline,
) -> Coupons:
    """Welcome, campaign and birthday coupons (before redemption)."""
    primary = records.primary
    joined = np.flatnonzero(people.joins_at_signup)
    welcome = _issue(primary[joined], -1, people.signup[joined], WELCOME_DAYS, WELCOME_FACE)
    face = plan["face_value"].to_numpy()[contacts.campaign]
    given = contacts.treated & (face > 0)
    campaign = _issue(
        primary[contacts.person[given]],
        contacts.campaign[given],
        contacts.day[given],
        14.0,
        face[given],
    )
    return welcome + campaign + birthday_coupons(records, people, orders, timeline)


def birthday_coupons(
    records: Records, people: People, orders: Orders, timeline: Timeline
) -> Coupons:
    """Issue a coupon on the first of the birth month to members who bought in the past year."""
    start = pd.Timestamp(timeline.start)
    birth_month = (start - pd.to_timedelta(people.age * 365.25, unit="D")).month.to_numpy()
    parts = []
    for year in range(start.year, start.year + timeline.n_days // 365 + 2):
        issue = np.array([timeline.day_of(f"{year}-{m:02d}-01") for m in range(1, 13)])[
            birth_month - 1
        ]
        member = records.primary
        eligible = (records.member_day[member] <= issue) & (issue >= 0) & (issue < timeline.n_days)
        last = _last_order_before(orders, issue, people.n)
        who = np.flatnonzero(eligible & (issue - last <= 365))
        parts.append(_issue(member[who], -1, issue[who], 30.0, BIRTHDAY_FACE))
    out = parts[0]
    for part in parts[1:]:
        out = out + part
    return out


def _last_order_before(orders: Orders, day: F64, n: int) -> F64:
    seen = orders.day < day[orders.person]
    last = np.full(n, -np.inf)
    np.maximum.at(last, orders.person[seen], orders.day[seen])
    return last


def redeem(
    coupons: Coupons, orders: Orders, people: People, records: Records, rng: np.random.Generator
) -> None:
    """Use coupons on qualifying orders and take their value off the orders' first lines."""
    order = next_order(orders, coupons.record, coupons.issued, coupons.expires)
    gross = orders.per_order(orders.amount)
    person = records.person[coupons.record]
    ok = (order >= 0) & (gross[order] >= 2 * coupons.face)
    ok &= rng.random(order.size) < REDEEM_P[people.response[person]]
    first_use = np.zeros(ok.size, bool)
    _, first = np.unique(np.where(ok, order, -1), return_index=True)
    first_use[first] = True
    ok &= first_use & (order >= 0)
    coupons.order[ok] = order[ok]
    line = np.searchsorted(orders.line_order, order[ok])
    room = orders.amount[line] - orders.discount[line]
    orders.discount[line] += np.minimum(coupons.face[ok], room)
    # A refunded line gives back what was paid, which the coupon just lowered.
    refunded = orders.refund[line] > 0
    orders.refund[line] = np.where(refunded, orders.amount[line] - orders.discount[line], 0.0)


def coupon_frame(
    coupons: Coupons,
    records: Records,
    orders: Orders,
    plan: pd.DataFrame,
    order_id: pd.Series,
    timeline: Timeline,
) -> pd.DataFrame:
    """Rows of the ``coupon`` table (coupons expiring after the data end stay open)."""
    used = coupons.order >= 0
    redeemed = pd.Series(timeline.timestamps(orders.day[np.maximum(coupons.order, 0)])).where(used)
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[coupons.record],
            "campaign_id": _text.pick(plan["campaign_id"].to_numpy(), coupons.campaign),
            "issued_at": timeline.timestamps(coupons.issued),
            "expires_at": timeline.midnights(np.ceil(coupons.expires)),
            "face_value": coupons.face,
            "redeemed_at": redeemed,
            "order_id": _text.pick(order_id.to_numpy(), np.where(used, coupons.order, -1)),
        }
    )
