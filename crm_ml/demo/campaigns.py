"""Campaigns with randomised control groups and a heterogeneous treatment effect.

Every year the retailer runs the same calendar of operation plans (Women's Day,
spring win-back, 618, summer win-back, member day, Double 11). Each targets an
audience chosen from what the retailer can see on the start day (recent
purchases, membership, gender) among people whose marketing consent on the
campaign's channel is granted, and holds out a random control group.

Treated people react by type: *responders* buy at a multiple of their usual
rate while the campaign runs, *never* types are unmoved, and a few are *put
off* (they buy less, and some withdraw consent). Campaigns run in date order,
because a campaign's audience depends on purchases that earlier ones caused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.consent import ConsentState
from crm_ml.demo.orders import Orders, next_order
from crm_ml.demo.population import People
from crm_ml.demo.purchases import (
    Life,
    Purchases,
    Windows,
    apply_windows,
    death_days,
    observed,
)
from crm_ml.demo.timeline import Timeline
from crm_ml.store.schema import CONSENT_CHANNELS

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

CAMPAIGN_DAYS = 14.0
#: (month-day, zh name, en name, channel, audience, coupon face value, strength, control share)
_CALENDAR = (
    ("03-01", "女神节焕新礼", "Women's Day Treat", "wechat", "female", 30.0, 1.0, 0.2),
    ("04-12", "春季老客唤醒", "Spring Win-back", "sms", "lapsed", 20.0, 0.8, 0.3),
    ("06-01", "618会员专享券", "Mid-year Sale Coupon", "app_push", "active", 50.0, 1.0, 0.2),
    ("08-20", "夏末召回计划", "Late Summer Win-back", "sms", "lapsed", 30.0, 0.8, 0.3),
    ("09-16", "会员日积分加倍", "Member Day Double Points", "sms", "members", 0.0, 0.5, 0.2),
    ("10-28", "双11预售提醒", "Black Friday Early Access", "wechat", "active", 50.0, 1.0, 0.2),
)


def _calendar_rows(timeline: Timeline, chinese: bool) -> list[dict[str, object]]:
    start_year = pd.Timestamp(timeline.start).year
    rows: list[dict[str, object]] = []
    for year in range(start_year, start_year + timeline.n_days // 365 + 2):
        for md, zh, en, channel, audience, face, strength, share in _CALENDAR:
            day = timeline.day_of(f"{year}-{md}")
            if not 60 <= day <= timeline.n_days - 30:
                continue
            rows.append(
                {
                    "campaign_id": f"CMP{year}{md[:2]}",
                    "name": f"{year} {zh if chinese else en}",
                    "channel": channel if chinese or channel != "wechat" else "email",
                    "start_day": day,
                    "audience": audience,
                    "face_value": face,
                    "strength": strength,
                    "control_share": share,
                }
            )
    return rows


def campaign_plan(timeline: Timeline, *, chinese: bool) -> pd.DataFrame:
    """List the campaigns between two months after the start and a month before the end.

    Returns
    -------
    pandas.DataFrame
        One row per campaign: the ``campaign`` table's columns plus ``start_day``,
        ``audience``, ``face_value`` and ``strength``.
    """
    columns = [
        "campaign_id",
        "name",
        "channel",
        "start_day",
        "audience",
        "face_value",
        "strength",
        "control_share",
    ]
    frame = pd.DataFrame(_calendar_rows(timeline, chinese), columns=columns)
    frame["purpose"] = "marketing"
    frame["segment_id"] = None
    frame["start_at"] = timeline.midnights(frame["start_day"].to_numpy())
    frame["end_at"] = timeline.midnights(frame["start_day"].to_numpy() + CAMPAIGN_DAYS)
    return frame


@dataclass
class Contacts:
    """People drawn into campaigns: campaign row index, person, treated or not, contact day."""

    campaign: I64
    person: I64
    treated: NDArray[np.bool_]
    day: F64

    def __add__(self, other: Contacts) -> Contacts:
        return Contacts(
            np.concatenate([self.campaign, other.campaign]),
            np.concatenate([self.person, other.person]),
            np.concatenate([self.treated, other.treated]),
            np.concatenate([self.day, other.day]),
        )


def last_purchase_before(purchases: Purchases, death: F64, day: float, n: int) -> F64:
    """Each person's latest purchase before ``day`` that happened while alive (``-inf`` if none)."""
    seen = (purchases.day < day) & (purchases.day <= death[purchases.person])
    last = np.full(n, -np.inf)
    np.maximum.at(last, purchases.person[seen], purchases.day[seen])
    return last


def member_since(people: People, purchases: Purchases, joins_later: NDArray[np.bool_]) -> F64:
    """Day each person's primary record joins the programme (``inf`` if never).

    People who do not join at sign-up may join at their second purchase.
    """
    second = purchases.rank() == 1
    at_second = np.full(people.n, np.inf)
    at_second[purchases.person[second]] = purchases.day[second]
    later = np.where(joins_later, at_second, np.inf)
    return np.where(people.joins_at_signup, people.signup, later)


@dataclass(frozen=True)
class CampaignSpec:
    """One row of the plan, typed: what :func:`run_campaigns` needs of a campaign."""

    index: int
    start_day: float
    channel: str
    audience: str
    strength: float
    control_share: float

    @classmethod
    def from_plan(cls, plan: pd.DataFrame) -> list[CampaignSpec]:
        """One spec per plan row, in plan order."""
        columns = ["start_day", "channel", "audience", "strength", "control_share"]
        rows = plan[columns].to_dict("records")
        return [
            cls(
                i,
                float(r["start_day"]),
                str(r["channel"]),
                str(r["audience"]),
                float(r["strength"]),
                float(r["control_share"]),
            )
            for i, r in enumerate(rows)
        ]


def audience(spec: CampaignSpec, people: People, last: F64, member_day: F64) -> NDArray[np.bool_]:
    """Who a campaign targets, from what the retailer sees on its start day."""
    recency = spec.start_day - last
    if spec.audience == "active":
        return recency <= 365
    if spec.audience == "lapsed":
        return (recency > 120) & (recency <= 365)
    if spec.audience == "female":
        return (people.gender == 0) & (recency <= 730)
    return (member_day <= spec.start_day) & (recency <= 730)


def treatment_windows(people: People, who: I64, day: F64, strength: float) -> Windows:
    """Windows of treated people whose purchase rate the campaign changes."""
    lift = people.lift[who]
    factor = np.where(lift > 1.0, 1.0 + (lift - 1.0) * strength, 1.0 - (1.0 - lift) * strength)
    moved = factor != 1.0
    who, day, factor = who[moved], day[moved], factor[moved]
    return Windows(who, day, day + CAMPAIGN_DAYS, factor, day)


def _targets(
    spec: CampaignSpec,
    people: People,
    life: Life,
    purchases: Purchases,
    joins_later: NDArray[np.bool_],
) -> I64:
    death = death_days(purchases, life, people.n)
    last = last_purchase_before(purchases, death, spec.start_day, people.n)
    member_day = member_since(people, observed(purchases, death), joins_later)
    target = audience(spec, people, last, member_day) & (people.signup < spec.start_day)
    return np.flatnonzero(target)


def run_campaigns(
    plan: pd.DataFrame,
    people: People,
    life: Life,
    consent: ConsentState,
    purchases: Purchases,
    timeline: Timeline,
    joins_later: NDArray[np.bool_],
    rng: np.random.Generator,
) -> tuple[Purchases, Contacts, Windows]:
    """Run the campaigns in date order; return purchases with their effects, contacts, windows."""
    contacts = Contacts(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0)
    )
    windows = Windows.empty()
    for spec in CampaignSpec.from_plan(plan):
        who = _targets(spec, people, life, purchases, joins_later)
        day = spec.start_day + rng.uniform(0.0, 1.5, who.size)
        # Lists are consent-filtered when the message goes out, not when the campaign is planned.
        reachable = consent.granted(spec.channel, who, day, people.signup)
        who, day = who[reachable], day[reachable]
        treated = rng.random(who.size) >= spec.control_share
        effect = treatment_windows(people, who[treated], day[treated], spec.strength)
        purchases = apply_windows(purchases, effect, people, timeline, rng)
        windows = windows + effect
        _put_off_withdrawals(consent, people, who[treated], day[treated], spec.channel, rng)
        contacts = contacts + Contacts(np.full(who.size, spec.index), who, treated, day)
    return purchases, contacts, windows


def _put_off_withdrawals(
    consent: ConsentState,
    people: People,
    who: I64,
    day: F64,
    channel: str,
    rng: np.random.Generator,
) -> None:
    put_off = (people.response[who] == 2) & (rng.random(who.size) < 0.4)
    when = day[put_off] + rng.uniform(0.0, 3.0, int(put_off.sum()))
    ch = np.full(when.size, CONSENT_CHANNELS.index(channel))
    consent.withdraw(who[put_off], ch, when, "unsubscribe_link")


def campaign_frame(plan: pd.DataFrame) -> pd.DataFrame:
    """Rows of the ``campaign`` table."""
    columns = [
        "campaign_id",
        "name",
        "channel",
        "purpose",
        "segment_id",
        "start_at",
        "end_at",
        "control_share",
    ]
    return plan[columns].copy()


def contact_frame(
    contacts: Contacts,
    plan: pd.DataFrame,
    orders: Orders,
    customer_id: NDArray[np.object_],
    order_id: pd.Series,
    timeline: Timeline,
) -> pd.DataFrame:
    """Rows of ``campaign_contact``; a contact responded if they ordered while the campaign ran.

    Control contacts are recorded with the response they would be credited with, so
    response rates of the two groups can be compared.
    """
    order = next_order(
        orders, contacts.person, contacts.day, contacts.day + CAMPAIGN_DAYS, by_person=True
    )
    responded = order >= 0
    return pd.DataFrame(
        {
            "campaign_id": plan["campaign_id"].to_numpy()[contacts.campaign],
            "customer_id": customer_id[contacts.person],
            "contact_group": np.where(contacts.treated, "treatment", "control"),
            "contacted_at": timeline.timestamps(contacts.day),
            "responded": responded,
            "responded_at": pd.Series(timeline.timestamps(orders.day[np.maximum(order, 0)])).where(
                responded
            )
            if orders.n
            else pd.Series(pd.NaT, index=range(order.size), dtype="datetime64[us]"),
            "order_id": _text.pick(order_id.to_numpy(), order),
        }
    )
