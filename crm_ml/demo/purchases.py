"""The latent purchase process: when each person buys, and when they leave for good.

While alive, a person buys as a Poisson process with intensity
``purchase_rate * season(t)``, raised or lowered inside *windows* (a welcome
coupon, a campaign). A person leaves for good:

- after their ``N``-th purchase, ``N ~ Geometric(dropout)`` (BG/NBD's coin flip
  after every purchase, the first one included);
- at a complaint, with probability :data:`COMPLAINT_FATALITY`;
- or through a small background hazard.

Purchases are drawn as if the person never left and cut at the time of leaving
(:func:`death_days`), which gives the same law and keeps every step vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crm_ml.demo.population import BACKGROUND_HAZARD, COMPLAINT_FATALITY, People
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


@dataclass
class Windows:
    """Spells during which a person's purchase rate is multiplied by ``factor``.

    ``issued`` is when the person (and the retailer) learnt of it: a coupon's
    issue date, a campaign's contact date.
    """

    person: I64
    start: F64
    end: F64
    factor: F64
    issued: F64

    @classmethod
    def empty(cls) -> Windows:
        """No windows."""
        z = np.zeros(0)
        return cls(np.zeros(0, dtype=np.int64), z, z, z, z)

    def __add__(self, other: Windows) -> Windows:
        return Windows(
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.__annotations__)
        )

    def select(self, mask: B) -> Windows:
        """Return the windows where ``mask`` holds."""
        return Windows(
            self.person[mask],
            self.start[mask],
            self.end[mask],
            self.factor[mask],
            self.issued[mask],
        )


@dataclass
class Life:
    """How and when each person would leave, apart from their purchases.

    Attributes
    ----------
    last_purchase_no : ndarray
        ``N``: the person leaves right after their ``N``-th purchase.
    complaint_person, complaint_day : ndarray
        Every complaint the person would make if they never left (unsorted).
    complaint_fatal : ndarray
        Whether that complaint ends the relationship.
    fatal_complaint_day : ndarray
        Day of each person's first fatal complaint (``inf`` if none).
    leave_day : ndarray
        Earliest of the first fatal complaint and the background hazard, per person.
    """

    last_purchase_no: I64
    complaint_person: I64
    complaint_day: F64
    complaint_fatal: B
    fatal_complaint_day: F64
    leave_day: F64


def draw_life(people: People, timeline: Timeline, rng: np.random.Generator) -> Life:
    """Draw each person's dropout count, complaints and background leaving time."""
    n = people.n
    last_no = rng.geometric(people.dropout).astype(np.int64)
    who, day = timeline.poisson_times(
        people.complaint_rate, people.signup, np.full(n, float(timeline.n_days)), rng
    )
    fatal = rng.random(who.size) < COMPLAINT_FATALITY
    first_fatal = np.full(n, np.inf)
    np.minimum.at(first_fatal, who[fatal], day[fatal])
    drift = people.signup + rng.exponential(1.0 / BACKGROUND_HAZARD, size=n)
    return Life(last_no, who, day, fatal, first_fatal, np.minimum(first_fatal, drift))


@dataclass
class Purchases:
    """Purchase times, sorted by person then time."""

    person: I64
    day: F64

    @classmethod
    def sorted(cls, person: I64, day: F64, span: float) -> Purchases:
        """Sort ``(person, day)`` pairs; ``span`` exceeds any day."""
        order = np.argsort(person * span + day, kind="stable")
        return cls(person[order], day[order])

    def key(self, span: float) -> F64:
        """Return a sortable key, ``person * span + day``."""
        return self.person * span + self.day

    def rank(self) -> I64:
        """Position of each purchase within its person's history (0 = first)."""
        first = np.searchsorted(self.person, self.person, side="left")
        return np.arange(self.person.size) - first

    def select(self, mask: B) -> Purchases:
        """Return the purchases where ``mask`` holds."""
        return Purchases(self.person[mask], self.day[mask])


def ranges(lo: I64, hi: I64) -> tuple[I64, I64]:
    """Flatten index ranges ``[lo[j], hi[j])``: return (j of each index, the index)."""
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(lo.size), counts)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts.size else counts
    return owner, lo[owner] + np.arange(owner.size) - start[owner]


def base_purchases(people: People, timeline: Timeline, rng: np.random.Generator) -> Purchases:
    """Purchases of the latent process before any window, ignoring leaving."""
    end = np.full(people.n, float(timeline.n_days))
    who, day = timeline.poisson_times(people.purchase_rate, people.signup, end, rng)
    first = np.flatnonzero(people.buys_at_signup)
    person = np.concatenate([first, who])
    days = np.concatenate([people.signup[first], day])
    return Purchases.sorted(person, days, timeline.horizon + 1.0)


def apply_windows(
    purchases: Purchases,
    windows: Windows,
    people: People,
    timeline: Timeline,
    rng: np.random.Generator,
) -> Purchases:
    """Add purchases inside windows with ``factor > 1``; thin them where ``factor < 1``.

    Overlapping windows add up: the rate is ``rate * (1 + sum(factor - 1))``.
    """
    span = timeline.horizon + 1.0
    up = windows.select(windows.factor > 1.0)
    end = np.minimum(up.end, float(timeline.n_days))
    rate = people.purchase_rate[up.person] * (up.factor - 1.0)
    j, day = timeline.poisson_times(rate, up.start, end, rng)
    down = windows.select(windows.factor < 1.0)
    key = purchases.key(span)
    lo = np.searchsorted(key, down.person * span + down.start)
    hi = np.searchsorted(key, down.person * span + down.end)
    owner, index = ranges(lo, hi)
    drop = index[rng.random(index.size) >= down.factor[owner]]
    keep = np.ones(purchases.person.size, dtype=bool)
    keep[drop] = False
    person = np.concatenate([purchases.person[keep], up.person[j]])
    return Purchases.sorted(person, np.concatenate([purchases.day[keep], day]), span)


def death_days(purchases: Purchases, life: Life, n: int) -> F64:
    """Day each person leaves for good (``inf`` if not within the generated purchases)."""
    rank = purchases.rank()
    last = rank == life.last_purchase_no[purchases.person] - 1
    at_purchase = np.full(n, np.inf)
    at_purchase[purchases.person[last]] = purchases.day[last]
    return np.minimum(at_purchase, life.leave_day)


def observed(purchases: Purchases, death: F64) -> Purchases:
    """Purchases up to and including the one after which each person left."""
    return purchases.select(purchases.day <= death[purchases.person])
