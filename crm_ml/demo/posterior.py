"""What the recorded tables alone say about each person, under the generator's own law.

The truth (:mod:`crm_ml.demo.truth`) knows each person's latent traits; a model
sees only the tables. In between sits this posterior: Bayes' rule applied to
what the store records before ``as_of`` (orders, page views, complaints,
sign-up time and acquisition channel), with the generator's own law and
parameters. It tells how much of the oracle the recorded data supports:
``bench/oracle.py`` reports it next to our model.

Hypotheses about when the person left (``D``), each weighed by its likelihood:

- still a customer at ``as_of``;
- left right after the last order (the dropout coin, BG/NBD style);
- left at the last complaint, when it came after the last order;
- left silently (background hazard) at some time between the last record and
  ``as_of`` (a grid of :data:`GRID` points).

The evidence, with the person's latent rates integrated out: orders are a
gamma-Poisson process on the seasonal clock until ``D``; the dropout
probability is beta-distributed; every complaint was survived except a fatal
last one; page views (which, unlike product views, searches and cart adds,
never come from the burst before an order) are a Poisson process with a
log-normal rate, thinned over the 90 days before ``D`` and reduced to a
trickle for 180 days after it.

Left out, so the posterior is an estimate of what the data supports, not a
bound: coupon and campaign windows, the fade of people who will leave soon
after ``as_of``, and the leaving hazard inside the 90-day horizon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import betaln, gammaln, logsumexp

from crm_ml.demo.behaviour import FADE_DAYS
from crm_ml.demo.population import (
    BACKGROUND_HAZARD,
    COMPLAINT_FATALITY,
    DROPOUT_BETA,
    MEAN_PURCHASES_PER_YEAR,
    RATE_SHAPE,
)
from crm_ml.demo.timeline import Timeline
from crm_ml.store import Store
from crm_ml.store.bulk import fetch

F64 = NDArray[np.float64]

RATE_SCALE = RATE_SHAPE / (MEAN_PURCHASES_PER_YEAR / 365.0)  # gamma rate parameter, per day
PAGE_VIEW_SHARE = 0.45  # share of background browsing that is a page view (behaviour._BROWSE_MIX)
BROWSE_PER_YEAR = {True: 22.0, False: 6.0}  # digital sign-up vs in-store (population.draw_people)
BROWSE_LOG_MEAN, BROWSE_LOG_SD = -0.2, 0.6  # log-normal spread of browsing across people
#: That log-normal rate, replaced by the gamma with the same mean and variance (closed form).
BROWSE_SHAPE = 1.0 / np.expm1(BROWSE_LOG_SD**2)
FLOOR_SHARE, TRICKLE_SHARE, TRICKLE_DAYS = 0.15, 0.05, 180.0  # behaviour._browsing
GRID = 80
HORIZON_DAYS = 90.0
CHUNK = 5_000


@dataclass
class Histories:
    """Each person's recorded history before ``as_of``, in days since the timeline's start.

    ``orders``, ``views`` and ``complaints`` hold one sorted array per person.
    """

    customer_id: pd.Index
    signup: F64
    digital: NDArray[np.bool_]
    orders: list[F64]
    views: list[F64]
    complaints: list[F64]
    as_of: float


def days_since_start(when: pd.Series, timeline: Timeline) -> F64:
    """Invert :meth:`Timeline.timestamps`: local 08:00-24:00 of day k is ``[k, k + 1)``."""
    local = pd.to_datetime(when) + pd.Timedelta(hours=timeline.utc_offset)
    midnight = local.dt.normalize()
    day = (midnight - pd.Timestamp(timeline.start)).dt.days.to_numpy(float)
    hours = (local - midnight).dt.total_seconds().to_numpy() / 3_600.0
    return day + np.clip((hours - 8.0) / 16.0, 0.0, 1.0 - 1e-9)


@dataclass
class Records:
    """The rows the posterior reads: customers, orders, page views and complaints."""

    customers: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame


def read_records(store: Store) -> Records:
    """Read the three tables once (every date's histories are cut from them)."""
    with store.connect() as conn:
        customers = fetch(
            conn,
            "SELECT customer_id, created_at, acquisition_channel FROM customer",
            {"customer_id": "text", "created_at": "timestamp", "acquisition_channel": "text"},
        )
        orders = fetch(
            conn,
            "SELECT customer_id, ordered_at FROM orders",
            {"customer_id": "text", "ordered_at": "timestamp"},
        )
        events = fetch(
            conn,
            "SELECT customer_id, event_type, occurred_at FROM behavior_event "
            "WHERE event_type IN ('page_view', 'complaint')",
            {"customer_id": "text", "event_type": "text", "occurred_at": "timestamp"},
        )
    return Records(customers, orders, events)


def _per_person(frame: pd.DataFrame, ids: pd.Index, timeline: Timeline) -> list[F64]:
    if frame.empty:
        return [np.zeros(0) for _ in ids]
    days = pd.Series(days_since_start(frame["at"], timeline), index=frame["customer_id"].to_numpy())
    grouped = days.sort_values(kind="stable").groupby(level=0).apply(np.asarray).to_dict()
    none = np.zeros(0)
    return [np.asarray(grouped.get(c, none), dtype=float) for c in ids]


def histories(
    records: Records,
    as_of: datetime | str,
    timeline: Timeline,
    survivors: Mapping[str, str] | None = None,
) -> Histories:
    """Each customer's history before ``as_of`` (customers created before it).

    ``survivors`` (``merged_id -> surviving_id``) pools the records merged away
    into their survivor, whose sign-up is the earliest of them.
    """
    customers, orders, events = records.customers, records.orders, records.events
    cutoff = pd.Timestamp(as_of)
    rename = pd.Series(dict(survivors or {}), dtype="str")

    def pooled(frame: pd.DataFrame, at: str) -> pd.DataFrame:
        out = frame.loc[frame[at] < cutoff, ["customer_id", at]].rename(columns={at: "at"})
        ids = out["customer_id"].astype("str")
        merged = ids.isin(rename.index)
        ids[merged] = rename[ids[merged]].to_numpy()
        out["customer_id"] = ids
        return out

    people = pooled(customers, "created_at")
    people["digital"] = customers.loc[people.index, "acquisition_channel"].ne("store").to_numpy()
    first = people.sort_values("at", kind="stable").groupby("customer_id").first()
    ids = pd.Index(first.index.astype(str), name="customer_id")
    kinds = events["event_type"]
    return Histories(
        customer_id=ids,
        signup=days_since_start(first["at"], timeline),
        digital=first["digital"].to_numpy(bool),
        orders=_per_person(pooled(orders, "ordered_at"), ids, timeline),
        views=_per_person(pooled(events[kinds == "page_view"], "occurred_at"), ids, timeline),
        complaints=_per_person(pooled(events[kinds == "complaint"], "occurred_at"), ids, timeline),
        as_of=timeline.day_of(cutoff),
    )


class _Clock:
    """Integrals of the season, and of ``t * season``, from day 0."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        season = timeline.season
        self.season = season
        self.first_moment = np.concatenate(
            [[0.0], np.cumsum(season * (np.arange(season.size) + 0.5))]
        )

    def mass(self, t: F64) -> F64:
        return self.timeline.mass(np.asarray(t, float))

    def moment(self, t: F64) -> F64:
        t = np.clip(np.asarray(t, float), 0.0, self.season.size - 1e-9)
        k = np.floor(t).astype(np.int64)
        return self.first_moment[k] + self.season[k] * (t * t - k * k) / 2.0

    def browse_exposure(self, leave: F64, start: F64, end: float) -> F64:
        """Seasonal mass of ``keep(t; leave)`` over ``[start, end)``: the browsing to expect."""

        def span(lo: F64, hi: F64) -> tuple[F64, F64]:
            a = np.clip(lo, start, end)
            return a, np.maximum(a, np.clip(hi, start, end))

        a, b = span(np.full_like(leave, -np.inf), leave - FADE_DAYS)
        full = self.mass(b) - self.mass(a)
        a, b = span(leave - FADE_DAYS, leave - FLOOR_SHARE * FADE_DAYS)
        fade = (
            leave * (self.mass(b) - self.mass(a)) - (self.moment(b) - self.moment(a))
        ) / FADE_DAYS
        a, b = span(leave - FLOOR_SHARE * FADE_DAYS, leave)
        floor = FLOOR_SHARE * (self.mass(b) - self.mass(a))
        a, b = span(leave, leave + TRICKLE_DAYS)
        trickle = TRICKLE_SHARE * (self.mass(b) - self.mass(a))
        return full + fade + floor + trickle


def _log_keep(t: F64, leave: F64) -> F64:
    """Log of the share of browsing kept at ``t`` by someone leaving at ``leave``."""
    to_leave = leave - t
    keep = np.where(
        to_leave > 0,
        np.clip(to_leave / FADE_DAYS, FLOOR_SHARE, 1.0),
        np.where(to_leave > -TRICKLE_DAYS, TRICKLE_SHARE, 0.0),
    )
    with np.errstate(divide="ignore"):
        return np.log(keep)


ALIVE, DROPOUT, COMPLAINT, SILENT = 0, 1, 2, 3
STILL_HERE = 1e12  # the leaving time of someone who has not left


@dataclass
class _Summary:
    """What the likelihood needs of a chunk of histories."""

    signup: F64
    digital: NDArray[np.bool_]
    orders: F64  # count, the sign-up purchase included
    poisson_orders: F64  # count without it: the sign-up purchase is not part of the process
    last_order: F64  # -inf when none
    complaints: F64
    last_complaint: F64
    views: list[F64]

    @classmethod
    def of(cls, h: Histories, rows: slice) -> _Summary:
        def last(arrays: list[F64]) -> F64:
            return np.array([a[-1] if a.size else -np.inf for a in arrays])

        signup, orders = h.signup[rows], h.orders[rows]
        count = np.array([o.size for o in orders], dtype=float)
        first = np.array([o[0] if o.size else np.nan for o in orders])
        return cls(
            signup=signup,
            digital=h.digital[rows],
            orders=count,
            poisson_orders=count - (np.abs(first - signup) < 1e-3),
            last_order=last(orders),
            complaints=np.array([c.size for c in h.complaints[rows]], dtype=float),
            last_complaint=last(h.complaints[rows]),
            views=h.views[rows],
        )


def _hypotheses(m: _Summary, T: float) -> tuple[F64, NDArray[np.int64], NDArray[np.bool_], F64]:
    """Leaving times to weigh, per person: (leave, kind, possible, log prior weight)."""
    n = m.signup.size
    lo = np.maximum.reduce([m.signup, m.last_order, m.last_complaint])
    width = np.maximum(T - lo, 0.0)
    grid = lo[:, None] + (np.arange(GRID) + 0.5)[None, :] / GRID * width[:, None]
    leave = np.column_stack([np.full(n, STILL_HERE), m.last_order, m.last_complaint, grid])
    kind = np.broadcast_to(np.r_[ALIVE, DROPOUT, COMPLAINT, np.full(GRID, SILENT)], leave.shape)
    complained_last = m.last_complaint > m.last_order  # complaints stop when people leave
    possible = np.column_stack(
        [
            np.ones(n, bool),
            (m.orders > 0) & ~complained_last,
            (m.complaints > 0) & complained_last,
            np.repeat((width > 1e-6)[:, None], GRID, axis=1),
        ]
    )
    # Silent leaving: the background hazard's density times the grid step.
    silent = np.log(BACKGROUND_HAZARD) + np.log(np.maximum(width, 1e-12) / GRID)
    log_prior = np.where(kind == SILENT, silent[:, None], 0.0)
    return np.where(possible, leave, T), kind, possible, log_prior


def _log_likelihood(
    m: _Summary, leave: F64, kind: NDArray[np.int64], clock: _Clock, T: float
) -> F64:
    """Log-likelihood of the records under each leaving time (terms equal for all dropped)."""
    (a, b), s = DROPOUT_BETA, m.signup[:, None]
    end = np.minimum(leave, T)
    shape = (RATE_SHAPE + m.poisson_orders)[:, None]
    orders = gammaln(shape) - shape * np.log(RATE_SCALE + clock.mass(end) - clock.mass(s))
    x = m.orders[:, None]
    coins = np.where(kind == DROPOUT, betaln(a + 1, b + x - 1), betaln(a, b + x))
    drift = -BACKGROUND_HAZARD * (end - s)
    survived = np.log1p(-COMPLAINT_FATALITY)
    c = m.complaints[:, None]
    complaints = np.where(
        kind == COMPLAINT, (c - 1) * survived + np.log(COMPLAINT_FATALITY), c * survived
    )
    return orders + coins + drift + complaints + _log_browsing(m, leave, clock, T)


def _log_browsing(m: _Summary, leave: F64, clock: _Clock, T: float) -> F64:
    """Page views: gamma-Poisson (only the expected browsing differs) times the kept shares."""
    k = np.array([v.size for v in m.views], dtype=float)
    per_year = np.where(m.digital, BROWSE_PER_YEAR[True], BROWSE_PER_YEAR[False])
    mean_rate = per_year * PAGE_VIEW_SHARE / 365.0 * np.exp(BROWSE_LOG_MEAN + BROWSE_LOG_SD**2 / 2)
    exposure = clock.browse_exposure(leave, m.signup[:, None], T)
    out = -(BROWSE_SHAPE + k)[:, None] * np.log(BROWSE_SHAPE / mean_rate[:, None] + exposure)
    browsed = k > 0
    if browsed.any():
        owner = np.repeat(np.arange(k.size), k.astype(np.int64))
        kept = _log_keep(np.concatenate(m.views)[:, None], leave[owner])
        out[browsed] += np.add.reduceat(kept, (np.cumsum(k) - k)[browsed].astype(np.int64), axis=0)
    return out


def _chunk(h: Histories, clock: _Clock, rows: slice) -> tuple[F64, F64]:
    T, m = h.as_of, _Summary.of(h, rows)
    leave, kind, possible, log_prior = _hypotheses(m, T)
    log_post = np.where(possible, log_prior + _log_likelihood(m, leave, kind, clock, T), -np.inf)
    p_alive = np.exp(log_post[:, ALIVE] - logsumexp(log_post, axis=1))
    # Still here: the rate's posterior is gamma; P(no purchase in the next 90 days) is closed form.
    shape = RATE_SHAPE + m.poisson_orders
    scale = RATE_SCALE + clock.mass(np.full(m.signup.size, T)) - clock.mass(m.signup)
    ahead = float(clock.mass(np.array([T + HORIZON_DAYS]))[0] - clock.mass(np.array([T]))[0])
    return p_alive, p_alive * -np.expm1(shape * (np.log(scale) - np.log(scale + ahead)))


def recorded_posterior(h: Histories, timeline: Timeline) -> pd.DataFrame:
    """P(still a customer) and P(a purchase in the next 90 days) given the records only.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``: ``p_alive``, ``p_purchase_90d``.
    """
    clock = _Clock(timeline)
    parts = [_chunk(h, clock, slice(i, i + CHUNK)) for i in range(0, h.signup.size, CHUNK)]
    p_alive = np.concatenate([p for p, _ in parts]) if parts else np.zeros(0)
    p90 = np.concatenate([q for _, q in parts]) if parts else np.zeros(0)
    return pd.DataFrame({"p_alive": p_alive, "p_purchase_90d": p90}, index=h.customer_id)
