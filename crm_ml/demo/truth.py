"""Ground truth of the synthetic store, kept apart from the tables the features read.

For every person (keyed by their first record's ``customer_id``) and every
monthly snapshot after they signed up, the truth says whether they are still
a customer and the probability, under the latent process, that they buy
within 30 and 90 days; and the effect on the 30-day probability of being
treated by a standard campaign that day. A model's AUC against realised
labels can be compared with the AUC of these probabilities (the oracle).

What the truth conditions on: the person's latent traits and state at the
snapshot, the season, and the coupons and campaigns already under way. It does
not know of campaigns that start later (those are decided later, from data
not yet seen). Over a stretch where the purchase rate has seasonal mass ``L``
and the competing leaving hazard ``k`` (fatal complaints, background drift)
has mass ``kH``, ``P(purchase) = L / (L + kH) * (1 - exp(-(L + kH)))``; the
90-day horizon is chained from three 30-day stretches, so seasonality within
it is respected.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo.campaigns import CAMPAIGN_DAYS
from crm_ml.demo.loyalty import month_starts
from crm_ml.demo.population import BACKGROUND_HAZARD, COMPLAINT_FATALITY, People
from crm_ml.demo.purchases import Windows
from crm_ml.demo.timeline import Timeline
from crm_ml.errors import NotFoundError, ValidationError

F64 = NDArray[np.float64]

TRUTH_COLUMNS = (
    "customer_id",
    "as_of",
    "is_alive",
    "p_purchase_30d",
    "p_purchase_90d",
    "treatment_effect_30d",
)


def snapshot_days(timeline: Timeline) -> F64:
    """Monthly snapshot days: every first of the month after the start, to the day after the end."""
    days = month_starts(timeline)
    after_end = float(timeline.n_days)
    first_after = pd.Timestamp(timeline.start) + pd.Timedelta(days=timeline.n_days)
    return np.append(days, after_end) if first_after.day == 1 else days


def purchase_probability(mass: F64, leave: F64) -> F64:
    """Return P(a purchase before leaving) from the rate mass and leaving mass over a horizon."""
    total = mass + leave
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, mass / total, 0.0)
    return share * -np.expm1(-total)


#: The 90-day horizon is cut into 30-day segments, each with a constant-rate formula.
SEGMENT_DAYS = 30.0
SEGMENTS = 3


def _season(timeline: Timeline, lo: float, hi: float) -> float:
    return float(timeline.mass(np.array([hi]))[0] - timeline.mass(np.array([lo]))[0])


def _rate_mass(people: People, known: Windows, timeline: Timeline, lo: float, hi: float) -> F64:
    """Seasonal mass of each person's purchase rate over ``[lo, hi)``, with windows ``known``."""
    extra = np.zeros(people.n)
    start, stop = np.maximum(known.start, lo), np.minimum(known.end, hi)
    overlap = np.where(stop > start, timeline.mass(stop) - timeline.mass(start), 0.0)
    np.add.at(extra, known.person, (known.factor - 1.0) * overlap)
    return people.purchase_rate * np.maximum(_season(timeline, lo, hi) + extra, 0.0)


def _chained(masses: list[F64], leave: F64) -> list[F64]:
    """P(a purchase before leaving) by the end of each segment, chaining segment by segment."""
    reached, still_waiting, out = np.zeros_like(leave), np.ones_like(leave), []
    for mass in masses:
        reached = reached + still_waiting * purchase_probability(mass, leave)
        still_waiting = still_waiting * np.exp(-(mass + leave))
        out.append(reached)
    return out


def snapshot_truth(
    people: People, death: F64, windows: Windows, timeline: Timeline, day: float
) -> dict[str, F64]:
    """Truth of every person on one snapshot day (including those not yet signed up)."""
    alive = death > day
    leave = (people.complaint_rate * COMPLAINT_FATALITY + BACKGROUND_HAZARD) * SEGMENT_DAYS
    known = windows.select((windows.issued < day) & (windows.end > day))
    bounds = [day + k * SEGMENT_DAYS for k in range(SEGMENTS + 1)]
    masses = [_rate_mass(people, known, timeline, a, b) for a, b in itertools.pairwise(bounds)]
    p30, _, p90 = _chained(masses, leave)
    campaign = _season(timeline, day, day + CAMPAIGN_DAYS)
    treated = np.maximum(masses[0] + people.purchase_rate * (people.lift - 1.0) * campaign, 0.0)
    effect = purchase_probability(treated, leave) - p30
    return {
        "is_alive": alive,
        "p_purchase_30d": np.where(alive, p30, 0.0),
        "p_purchase_90d": np.where(alive, p90, 0.0),
        "treatment_effect_30d": np.where(alive, effect, 0.0),
    }


def truth_frame(
    people: People,
    customer_id: NDArray[np.object_],
    death: F64,
    windows: Windows,
    timeline: Timeline,
) -> pd.DataFrame:
    """Truth of each person at each monthly snapshot after their sign-up.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (the person's first record), ``as_of`` (naive-UTC
        midnight), ``is_alive``, ``p_purchase_30d``, ``p_purchase_90d``,
        ``treatment_effect_30d``; sorted by ``as_of`` then ``customer_id``.
    """
    frames = []
    for day in snapshot_days(timeline):
        who = np.flatnonzero(people.signup < day)
        values = snapshot_truth(people, death, windows, timeline, float(day))
        frame = pd.DataFrame({k: v[who] for k, v in values.items()})
        frame.insert(0, "as_of", timeline.midnights(np.full(who.size, day)))
        frame.insert(0, "customer_id", pd.Series(customer_id[who], dtype="str"))
        frames.append(frame.sort_values("customer_id", kind="stable"))
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in TRUTH_COLUMNS})


def load_truth(path: str | Path) -> pd.DataFrame:
    """Read the ground truth a generator run wrote.

    Parameters
    ----------
    path : str or Path
        The Parquet file (by default ``<store file>.truth.parquet``).

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, as_of, is_alive, p_purchase_30d, p_purchase_90d,
        treatment_effect_30d``, one row per customer and monthly snapshot.

    Raises
    ------
    NotFoundError
        If the file does not exist.
    ValidationError
        If it lacks a truth column.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(
            f"No ground-truth file at {path}. Generate a store with crm_ml.demo.generate(...), "
            "which writes it beside the store file (or where truth_path= says)."
        )
    frame = pd.read_parquet(path)
    missing = [c for c in TRUTH_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{path} is not a crm_ml truth file: missing columns {', '.join(missing)}."
        )
    return frame
