"""One chunk of people, from latent traits to the rows of every customer-level table.

The order of steps matters: campaigns need purchases (to pick audiences),
orders need the final purchases, coupons change order discounts, tiers need
final spend, points need tiers. Shared objects (catalog, campaign plan,
managers) come from :class:`World`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm_ml.demo import _text
from crm_ml.demo.behaviour import event_frame
from crm_ml.demo.campaigns import Contacts, contact_frame, member_since, run_campaigns
from crm_ml.demo.catalog import Catalog
from crm_ml.demo.consent import ConsentState, consent_rows, draw_consent, withdraw_after_complaints
from crm_ml.demo.coupons import Coupons, coupon_frame, issue_coupons, redeem, welcome_windows
from crm_ml.demo.identities import custom_value_frame, identity_frame
from crm_ml.demo.loyalty import TierHistory, owner_frame, tier_change_frame, tier_history
from crm_ml.demo.names import NamePools
from crm_ml.demo.orders import Orders, build_orders, order_frames
from crm_ml.demo.points import earnings, goodwill, points_frame, redemptions_and_expiry
from crm_ml.demo.population import People, draw_people
from crm_ml.demo.profiles import Records, customer_frame, draw_records, person_names
from crm_ml.demo.purchases import (
    Life,
    Windows,
    apply_windows,
    base_purchases,
    death_days,
    draw_life,
    observed,
)
from crm_ml.demo.stored_value import stored_value_entries, stored_value_frame
from crm_ml.demo.timeline import Timeline
from crm_ml.demo.truth import truth_frame
from crm_ml.store.schema import SOURCE_TABLES

#: Share of people who, not joining at sign-up, join the programme at their second purchase.
JOIN_LATER_P = 0.5
#: Share of duplicate records that are members (with their own card).
DUPLICATE_MEMBER_P = 0.4


@dataclass(frozen=True)
class World:
    """What every chunk shares: calendar, locale pools, catalog, campaigns, managers."""

    timeline: Timeline
    pools: NamePools
    catalog: Catalog
    plan: pd.DataFrame
    managers: pd.DataFrame


@dataclass
class Counters:
    """Next free number of each generated identifier, carried from chunk to chunk."""

    person: int = 0
    values: dict[str, int] = field(default_factory=dict)

    def take(self, name: str, n: int) -> int:
        """Reserve ``n`` numbers for ``name`` and return the first."""
        first = self.values.get(name, 0)
        self.values[name] = first + n
        return first


def _join_programme(records: Records, member_day: np.ndarray, rng: np.random.Generator) -> None:
    records.member_day[records.primary] = member_day
    dup = records.duplicate[records.duplicate >= 0]
    joins = rng.random(dup.size) < DUPLICATE_MEMBER_P
    records.member_day[dup[joins]] = records.created[dup[joins]]


def _complaints_made(life: Life, death: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    made = life.complaint_day <= death[life.complaint_person]
    return life.complaint_person[made], life.complaint_day[made]


@dataclass
class Chunk:
    """Everything simulated for one chunk of people, before it becomes table rows."""

    people: People
    records: Records
    life: Life
    consent: ConsentState
    death: np.ndarray
    orders: Orders
    coupons: Coupons
    contacts: Contacts
    windows: Windows

    @property
    def primary_id(self) -> np.ndarray:
        """Each person's first ``customer_id``."""
        return self.records.customer_id.to_numpy()[self.records.primary]


def simulate_chunk(world: World, n: int, counters: Counters, rng: np.random.Generator) -> Chunk:
    """Simulate ``n`` people from their latent traits to orders, coupons and contacts."""
    tl = world.timeline
    people = draw_people(n, counters.person, tl, world.pools, rng)
    counters.person += n
    records = draw_records(people, tl, counters.values.get("customer", 0), rng)
    counters.take("customer", records.person.size)
    life = draw_life(people, tl, rng)
    consent = draw_consent(people, rng)
    fatal = np.flatnonzero(np.isfinite(life.fatal_complaint_day))
    withdraw_after_complaints(consent, fatal, life.fatal_complaint_day[fatal], rng)
    joins_later = rng.random(n) < JOIN_LATER_P
    windows = welcome_windows(people)
    purchases = apply_windows(base_purchases(people, tl, rng), windows, people, tl, rng)
    purchases, contacts, campaign_windows = run_campaigns(
        world.plan, people, life, consent, purchases, tl, joins_later, rng
    )
    death = death_days(purchases, life, n)
    seen = observed(purchases, death)
    _join_programme(records, member_since(people, seen, joins_later), rng)
    orders = build_orders(seen, people, records, world.catalog, tl, rng)
    coupons = issue_coupons(records, people, contacts, world.plan, orders, tl)
    redeem(coupons, orders, people, records, rng)
    return Chunk(
        people, records, life, consent, death, orders, coupons, contacts, windows + campaign_windows
    )


#: Generated identifiers: table → (column, prefix, digits).
ID_COLUMNS = {
    "behavior_event": ("event_id", "E", 11),
    "points_ledger": ("entry_id", "PT", 10),
    "coupon": ("coupon_id", "Q", 10),
    "stored_value_ledger": ("entry_id", "SV", 10),
}


def chunk_frames(
    world: World, chunk: Chunk, counters: Counters, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Rows of every customer-level table for one chunk, keyed by table name in load order."""
    n_orders = chunk.orders.n
    order_id = _text.ids("O", counters.take("orders", n_orders), n_orders, 10)
    history = tier_history(chunk.orders, chunk.records, world.timeline)
    complaints = _complaints_made(chunk.life, chunk.death)
    frames = _profile_frames(world, chunk, history, rng)
    frames |= _activity_frames(world, chunk, complaints, order_id, rng)
    frames |= _asset_frames(world, chunk, history, complaints, order_id, rng)
    for table, (column, prefix, width) in ID_COLUMNS.items():
        rows = len(frames[table])
        frames[table].insert(0, column, _text.ids(prefix, counters.take(table, rows), rows, width))
    return {name: frames[name] for name in SOURCE_TABLES if name in frames}


def _profile_frames(
    world: World, chunk: Chunk, history: TierHistory, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    tl, pools, people, records = world.timeline, world.pools, chunk.people, chunk.records
    names = person_names(people, pools, rng)
    return {
        "customer": customer_frame(records, people, names, pools, tl, rng),
        "customer_identity": identity_frame(records, people, names, pools, tl, rng),
        "custom_field_value": custom_value_frame(records, people, pools, tl, rng),
        "customer_owner": owner_frame(history, records, world.managers, tl, rng),
        "consent": _consent(chunk, tl, rng),
    }


def _activity_frames(
    world: World,
    chunk: Chunk,
    complaints: tuple[np.ndarray, np.ndarray],
    order_id: pd.Series,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    tl, orders = world.timeline, chunk.orders
    head, lines = order_frames(orders, chunk.records, world.catalog, tl, order_id)
    events = event_frame(
        chunk.people,
        chunk.records,
        orders,
        chunk.death,
        complaints,
        world.catalog,
        tl,
        world.pools.locale,
        rng,
    )
    contacts = contact_frame(chunk.contacts, world.plan, orders, chunk.primary_id, order_id, tl)
    return {
        "orders": head,
        "order_item": lines,
        "behavior_event": events,
        "campaign_contact": contacts,
    }


def _asset_frames(
    world: World,
    chunk: Chunk,
    history: TierHistory,
    complaints: tuple[np.ndarray, np.ndarray],
    order_id: pd.Series,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    tl, records, orders = world.timeline, chunk.records, chunk.orders
    earned = earnings(orders, records, history)
    later = redemptions_and_expiry(earned, orders, records, chunk.people, tl, rng)
    kind = goodwill(*complaints, records, float(tl.n_days), rng)
    points = pd.concat([earned, later, kind], ignore_index=True)
    stored = stored_value_entries(orders, records, chunk.people, rng)
    return {
        "tier_change": tier_change_frame(history, records, tl, world.pools.chinese),
        "points_ledger": points_frame(points, records, order_id, tl, world.pools.locale),
        "coupon": coupon_frame(chunk.coupons, records, orders, world.plan, order_id, tl),
        "stored_value_ledger": stored_value_frame(stored, records, order_id, tl),
    }


def chunk_truth(chunk: Chunk, world: World) -> pd.DataFrame:
    """Ground truth of the chunk's people (see :mod:`crm_ml.demo.truth`)."""
    return truth_frame(chunk.people, chunk.primary_id, chunk.death, chunk.windows, world.timeline)


def _consent(chunk: Chunk, timeline: Timeline, rng: np.random.Generator) -> pd.DataFrame:
    rows = consent_rows(chunk.consent, chunk.people, chunk.primary_id, timeline, rng)
    # Duplicate records were asked again about SMS marketing, and may have answered differently.
    dup = np.flatnonzero(chunk.records.is_duplicate)
    answer = np.where(rng.random(dup.size) < 0.6, "granted", "withdrawn")
    again = pd.DataFrame(
        {
            "customer_id": chunk.records.customer_id.to_numpy()[dup],
            "channel": "sms",
            "purpose": "marketing",
            "updated_at": timeline.timestamps(chunk.records.created[dup]),
            "status": answer,
            "source": "registration",
        }
    )
    return pd.concat([rows, again], ignore_index=True)
