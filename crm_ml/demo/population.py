"""The synthetic people: when they arrive, who they are, and their hidden habits.

Each person has a profile (acquisition channel, gender, age, city) and latent
traits that drive everything they do later, in the spirit of BG/NBD:

- ``purchase_rate`` (per day) is gamma-distributed across people, so a few buy
  often and most rarely;
- ``dropout`` is beta-distributed: after each purchase the person leaves for good
  with that probability; complaints and a small background hazard can end them too;
- ``spend``, ``affinity`` (a persistent mix over product categories), ``deal``
  (appetite for discounts), ``dissatisfaction`` (refunds and complaints),
  ``browse_rate`` and the response to marketing (``lift``).

Nothing here is written to the store: the tables are derived from these traits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo.names import NamePools
from crm_ml.demo.timeline import Timeline
from crm_ml.store.schema import CHANNELS

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

#: Shares of acquisition channels (store, app, mini_program, web, referral).
CHANNEL_SHARES = {"zh_CN": (0.40, 0.15, 0.25, 0.08, 0.12), "en": (0.45, 0.25, 0.02, 0.18, 0.10)}
#: Probability of joining the loyalty programme at sign-up, by acquisition channel.
JOIN_AT_SIGNUP = np.array([0.55, 0.80, 0.85, 0.40, 0.60])
#: Probability that sign-up happens at a checkout (the first purchase), by channel.
BUY_AT_SIGNUP = np.array([0.90, 0.30, 0.35, 0.40, 0.50])
#: Typical share of purchases made in a physical store, by acquisition channel.
OFFLINE_SHARE = np.array([0.80, 0.15, 0.25, 0.10, 0.50])
#: Category appetite (maternity_baby, beauty, food, apparel, electronics, home) by gender.
AFFINITY_BASE = np.array(
    [
        [0.50, 1.00, 0.80, 0.90, 0.25, 0.60],  # female
        [0.15, 0.15, 0.80, 0.70, 1.00, 0.50],  # male
        [0.30, 0.50, 0.80, 0.80, 0.60, 0.55],  # not given
    ]
)
MEAN_PURCHASES_PER_YEAR = 5.5
RATE_SHAPE = 0.8  # gamma shape r: below 1, most people buy rarely
DROPOUT_BETA = (1.2, 4.5)  # mean dropout after a purchase ~0.21
BACKGROUND_HAZARD = 1.0 / (5 * 365.0)  # people also drift away at ~20 % a year
COMPLAINT_FATALITY = 0.35  # chance that a complaint ends the relationship
RESPONSE_TYPES = ("never", "responder", "put_off")


@dataclass
class People:
    """Profiles and latent traits of ``n`` people (arrays of length ``n``).

    Attributes
    ----------
    offset : int
        Global index of the first person (people are generated in chunks).
    signup : ndarray
        Day of registration (``customer.created_at``).
    channel : ndarray
        Index into :data:`crm_ml.store.schema.CHANNELS`.
    gender : ndarray
        0 female, 1 male, 2 not given.
    age : ndarray
        Age in years on the first day.
    city : ndarray
        Index into the locale's city pool, -1 when not given.
    purchase_rate, dropout, complaint_rate : ndarray
        Latent purchase intensity per day, dropout probability per purchase,
        complaints per day.
    spend, deal, dissatisfaction, browse_rate, offline : ndarray
        Spend level (1 = typical), discount appetite, refund/complaint proneness,
        browsing events per day, share of purchases made in a store.
    affinity : ndarray
        ``(n, 6)`` category mix, rows sum to 1 (order of ``CATEGORIES``).
    response, lift : ndarray
        Marketing response type (index into ``RESPONSE_TYPES``) and the factor by
        which a strong campaign multiplies the purchase rate while it runs.
    buys_at_signup, joins_at_signup, has_email, has_wechat, app_user : ndarray
        Booleans.
    """

    offset: int
    signup: F64
    channel: I64
    gender: I64
    age: F64
    city: I64
    purchase_rate: F64
    dropout: F64
    complaint_rate: F64
    spend: F64
    deal: F64
    dissatisfaction: F64
    browse_rate: F64
    offline: F64
    affinity: F64
    response: I64
    lift: F64
    buys_at_signup: B
    joins_at_signup: B
    has_email: B
    has_wechat: B
    app_user: B

    @property
    def n(self) -> int:
        """Number of people."""
        return int(self.signup.size)


def signup_days(n: int, timeline: Timeline, rng: np.random.Generator) -> F64:
    """Registration days: monthly cohorts growing ~15 % a year, busier in festival months."""
    start = pd.Timestamp(timeline.start)
    months = pd.date_range(start.to_period("M").to_timestamp(), periods=600, freq="MS")
    bounds = np.array([timeline.day_of(m) for m in months if timeline.day_of(m) < timeline.n_days])
    bounds = np.concatenate([np.maximum(bounds, 0.0), [float(timeline.n_days)]])
    mass = timeline.mass(bounds)
    weight = np.diff(mass) * 1.15 ** (np.arange(bounds.size - 1) / 12.0)
    month = rng.choice(weight.size, size=n, p=weight / weight.sum())
    y = mass[month] + rng.random(n) * (mass[month + 1] - mass[month])
    return np.minimum(timeline.inverse(y), timeline.n_days - 1e-6)


def _profile(n: int, pools: NamePools, rng: np.random.Generator) -> dict[str, np.ndarray]:
    shares = np.array(CHANNEL_SHARES[pools.locale])
    channel = rng.choice(len(CHANNELS), size=n, p=shares / shares.sum())
    gender = rng.choice(3, size=n, p=[0.62, 0.33, 0.05])
    age = np.clip(rng.normal(34.0, 9.5, size=n), 18.0, 72.0)
    sizes = np.array([w for _, _, w in pools.cities])
    city = rng.choice(sizes.size, size=n, p=sizes / sizes.sum())
    city = np.where(rng.random(n) < 0.03, -1, city)
    return {"channel": channel, "gender": gender, "age": age, "city": city}


def _affinity(gender: I64, age: F64, rng: np.random.Generator) -> F64:
    alpha = AFFINITY_BASE[gender].copy()
    young_parent = (gender == 0) & (age >= 24) & (age <= 38)
    alpha[young_parent, 0] *= 3.0
    # Small Dirichlet concentration: most people stick to one or two categories.
    draws = rng.gamma(alpha * 0.7) + 1e-9
    return draws / draws.sum(axis=1, keepdims=True)


def _response(deal: F64, age: F64, app_user: B, rng: np.random.Generator) -> tuple[I64, F64]:
    # Deal-seekers, the young and app users respond; a few older people are put off.
    logit = -0.8 + 3.0 * (deal - 0.4) + 0.6 * (age < 35) + 0.5 * app_user
    p_resp = 1.0 / (1.0 + np.exp(-logit))
    p_off = 0.05 + 0.10 * (age > 45) * (deal < 0.4)
    u = rng.random(deal.size)
    response = np.where(u < p_resp, 1, np.where(u < p_resp + p_off, 2, 0))
    lift = np.where(response == 1, rng.uniform(2.5, 6.0, deal.size), 1.0)
    return response.astype(np.int64), np.where(response == 2, 0.35, lift)


def _spend(city: I64, pools: NamePools, rate: F64, rng: np.random.Generator) -> F64:
    tiers = np.array([t for _, t, _ in pools.cities] + [3])  # city -1 reads the last entry
    tier_factor = np.array([0.0, 1.25, 1.1, 1.0, 0.9, 0.85])[tiers[city]]
    relative_rate = rate * 365.0 / MEAN_PURCHASES_PER_YEAR
    return rng.lognormal(-0.1, 0.5, size=city.size) * tier_factor * relative_rate**0.1


def draw_people(
    n: int, offset: int, timeline: Timeline, pools: NamePools, rng: np.random.Generator
) -> People:
    """Draw ``n`` people with global indices ``offset …``."""
    prof = _profile(n, pools, rng)
    channel, age = prof["channel"], prof["age"]
    rate = rng.gamma(RATE_SHAPE, MEAN_PURCHASES_PER_YEAR / RATE_SHAPE / 365.0, size=n)
    deal = rng.beta(2.0, 3.0, size=n)
    dissatisfaction = rng.beta(1.2, 6.0, size=n)
    digital = channel != 0
    app_user = (channel == 1) | (digital & (rng.random(n) < 0.3))
    browse_year = np.where(digital, 22.0, 6.0) * rng.lognormal(-0.2, 0.6, size=n)
    response, lift = _response(deal, age, app_user, rng)
    wechat_p = (0.75 + 0.25 * (channel == 2)) if pools.chinese else np.zeros(n)
    email_p = (0.35 + 0.35 * (channel == 3)) if pools.chinese else np.full(n, 0.85)
    return People(
        offset=offset,
        signup=signup_days(n, timeline, rng),
        channel=channel,
        gender=prof["gender"],
        age=age,
        city=prof["city"],
        purchase_rate=rate,
        dropout=rng.beta(*DROPOUT_BETA, size=n),
        complaint_rate=1.5 * dissatisfaction**2 / 365.0,
        spend=_spend(prof["city"], pools, rate, rng),
        deal=deal,
        dissatisfaction=dissatisfaction,
        browse_rate=browse_year / 365.0,
        offline=np.clip(OFFLINE_SHARE[channel] + rng.normal(0, 0.1, n), 0.0, 1.0),
        affinity=_affinity(prof["gender"], age, rng),
        response=response,
        lift=lift,
        buys_at_signup=rng.random(n) < BUY_AT_SIGNUP[channel],
        joins_at_signup=rng.random(n) < JOIN_AT_SIGNUP[channel],
        has_email=rng.random(n) < email_p,
        has_wechat=rng.random(n) < wechat_p,
        app_user=app_user,
    )


__all__ = ["RESPONSE_TYPES", "People", "draw_people"]
