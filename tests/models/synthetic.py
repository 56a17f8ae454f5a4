"""Small synthetic training frames with a known churn mechanism (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SNAPSHOTS = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"])


def make_snapshot(as_of: pd.Timestamp, n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """One snapshot: features plus ``churned``/``purchased`` labels drawn from a logistic model."""
    rng = np.random.default_rng(seed)
    usual = rng.gamma(3.0, 15.0, n).round() + 1
    recency = np.minimum(rng.exponential(usual * 1.5), 720).round()
    orders_lifetime = rng.poisson(6, n) + 1
    complaints = rng.poisson(0.3, n)
    expiring = np.where(rng.random(n) < 0.3, rng.integers(50, 800, n), 0)
    direction = rng.choice([-1, 0, 1], n, p=[0.15, 0.7, 0.15])
    logit = (
        -0.5
        + 1.6 * np.log1p(recency / usual)
        - 0.15 * orders_lifetime
        + 0.6 * complaints
        + 0.7 * (direction < 0)
        + shift
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "as_of": as_of,
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "recency_days": recency,
            "interpurchase_mean_days": usual,
            "orders_lifetime": orders_lifetime,
            "orders_365d": rng.poisson(3, n),
            "revenue_365d": rng.gamma(2.0, 300.0, n).round(2),
            "tenure_days": recency + rng.integers(30, 900, n),
            "complaints_90d": complaints,
            "points_expiring_30d": expiring,
            "last_tier_change_direction": direction,
            "days_since_tier_change": rng.integers(1, 400, n),
            "tier_level": rng.integers(0, 3, n),
            "city_tier": pd.Categorical(rng.choice(["1", "2", "3"], n)),
            "churned": churned,
            "purchased": 1 - churned,
        }
    )


def make_training_frame(n: int = 600, shifts: tuple[float, ...] = (0, 0, 0, 0)) -> pd.DataFrame:
    parts = [make_snapshot(s, n, seed=i, shift=shifts[i]) for i, s in enumerate(SNAPSHOTS)]
    return pd.concat(parts, ignore_index=True)


TINY = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 20, "n_jobs": 1}
