"""Baselines that a churn or propensity model must beat, scored from the same features.

- :class:`RecencyRule`: days since the last purchase (the rule retention teams
  already use: "no purchase for N days").
- :class:`RFMScore`: recency, frequency and monetary quintile scores summed (3..15).
- :class:`BetaGeoBaseline`: BG/NBD's probability of at least one purchase in
  the horizon, from ``orders_lifetime``, ``recency_days`` and ``tenure_days``.

Each has ``fit(X, y)`` and ``predict_proba(X)`` like the models. The two
rules map their score to a probability with an isotonic fit on the rows given
to ``fit`` (in a backtest, the calibration snapshot), so Brier score and
calibration error compare like with like; BG/NBD gives probabilities itself
and ignores ``y``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from crm_ml.errors import ValidationError
from crm_ml.models.beta_geo import BetaGeoModel
from crm_ml.models.calibration import ProbabilityCalibrator

Target = Literal["churn", "purchase"]
TARGETS = ("churn", "purchase")
#: How messages name each baseline of the backtest (its row in the metrics).
BASELINE_NAMES = {"recency_rule": "recency rule", "rfm_score": "RFM score", "bg_nbd": "BG/NBD"}


def _require(X: pd.DataFrame, columns: tuple[str, ...], who: str) -> None:
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValidationError(
            f"{who} needs feature column(s) {', '.join(missing)}, which the frame lacks."
        )


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValidationError(f"target must be one of {', '.join(TARGETS)}, got {target!r}.")


class _ScoreBaseline:
    """A monotone score turned into a probability by isotonic regression."""

    name = "baseline"

    def __init__(self, *, target: Target = "churn") -> None:
        self.target = target

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Return the raw score: higher means a more loyal, active customer."""
        raise NotImplementedError

    def _risk(self, X: pd.DataFrame) -> np.ndarray:
        loyal = self.score(X)
        return -loyal if self.target == "churn" else loyal

    def fit(self, X: pd.DataFrame, y: Any) -> _ScoreBaseline:
        """Learn the score's cut points (if any) and its map to a probability."""
        _check_target(self.target)
        self._learn(X)
        risk = self._risk(X)
        span = float(np.ptp(risk)) or 1.0
        # Rescale to [0, 1] so the isotonic map works on the same scale the calibrator expects.
        self.scale_ = (float(np.min(risk)), span)
        self.calibrator_ = ProbabilityCalibrator("isotonic").fit(self._unit(risk), np.asarray(y))
        return self

    def _learn(self, X: pd.DataFrame) -> None:
        """Learn cut points from the training rows (none by default)."""

    def _unit(self, risk: np.ndarray) -> np.ndarray:
        low, span = self.scale_
        return np.clip((risk - low) / span, 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Return probabilities, shape ``(n, 2)``: columns class 0, class 1."""
        if not hasattr(self, "calibrator_"):
            raise ValidationError(f"{type(self).__name__} is not fitted yet; call fit first.")
        p = self.calibrator_.transform(self._unit(self._risk(X)))
        return np.column_stack([1 - p, p])


class RecencyRule(_ScoreBaseline):
    """The longer since the last purchase, the likelier the churn (and the rarer a purchase).

    Customers who never bought (missing ``recency_days``) rank as the least active.
    """

    name = "recency_rule"

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Return minus the days since the last purchase (missing = 100 years)."""
        _require(X, ("recency_days",), "RecencyRule")
        days = pd.to_numeric(X["recency_days"], errors="coerce").astype(float).to_numpy()
        return -np.nan_to_num(days, nan=36_500.0)


class RFMScore(_ScoreBaseline):
    """Recency, frequency and monetary quintile scores (1..5 each), summed.

    Parameters
    ----------
    frequency_col, monetary_col : str
        Feature columns for F and M (default: last 365 days).
    """

    name = "rfm_score"

    def __init__(
        self,
        *,
        target: Target = "churn",
        frequency_col: str = "orders_365d",
        monetary_col: str = "revenue_365d",
    ) -> None:
        super().__init__(target=target)
        self.frequency_col = frequency_col
        self.monetary_col = monetary_col

    def _columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        cols = ("recency_days", self.frequency_col, self.monetary_col)
        _require(X, cols, "RFMScore")
        values = {c: pd.to_numeric(X[c], errors="coerce").astype(float).to_numpy() for c in cols}
        values["recency_days"] = -np.nan_to_num(values["recency_days"], nan=36_500.0)
        values[self.frequency_col] = np.nan_to_num(values[self.frequency_col])
        values[self.monetary_col] = np.nan_to_num(values[self.monetary_col])
        return values

    def _learn(self, X: pd.DataFrame) -> None:
        quantiles = [0.2, 0.4, 0.6, 0.8]
        self.edges_ = {c: np.quantile(v, quantiles) for c, v in self._columns(X).items()}

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Return R + F + M, each 1..5 by the quintile edges learned in ``fit``."""
        if not hasattr(self, "edges_"):
            raise ValidationError("RFMScore is not fitted yet; call fit first.")
        total = np.zeros(len(X))
        for col, values in self._columns(X).items():
            total += 1 + np.searchsorted(self.edges_[col], values, side="right")
        return total


class BetaGeoBaseline:
    """BG/NBD from features: P(at least one purchase in the horizon), or 1 minus it for churn.

    ``frequency`` = ``orders_lifetime`` - 1, ``T`` = ``tenure_days``, and the
    last purchase's age ``recency`` = ``T`` - ``recency_days``, in weeks.
    Customers who never bought are given ``frequency`` = 0 and ``recency`` = 0.

    Parameters
    ----------
    horizon_days : int
        Length of the label window.
    target : {"churn", "purchase"}
    fit_customers : int
        Fit on at most this many customers, drawn at random (seed 0). Four
        parameters are pinned down long before a million customers, while the
        fit's cost grows with them (about a minute per million).
    """

    name = "bg_nbd"

    def __init__(
        self, *, horizon_days: int = 90, target: Target = "churn", fit_customers: int = 100_000
    ) -> None:
        self.horizon_days = horizon_days
        self.target = target
        self.fit_customers = fit_customers

    @staticmethod
    def rfm(X: pd.DataFrame) -> pd.DataFrame:
        """Return ``frequency``, ``recency``, ``T`` in weeks, derived from the features."""
        _require(X, ("orders_lifetime", "recency_days", "tenure_days"), "BetaGeoBaseline")

        def num(col: str) -> np.ndarray:
            return pd.to_numeric(X[col], errors="coerce").astype(float).to_numpy()

        orders, recency_days = np.nan_to_num(num("orders_lifetime")), num("recency_days")
        age = np.maximum(np.nan_to_num(num("tenure_days")), 0.0)
        age = np.maximum(age, np.nan_to_num(recency_days))
        last = np.where(np.isnan(recency_days), 0.0, age - np.nan_to_num(recency_days))
        frequency = np.maximum(orders - 1, 0.0)
        last = np.where(frequency > 0, last, 0.0)
        return pd.DataFrame(
            {"frequency": frequency, "recency": last / 7.0, "T": age / 7.0}, index=X.index
        )

    def fit(self, X: pd.DataFrame, y: Any = None) -> BetaGeoBaseline:
        """Fit BG/NBD's four parameters on the customers' histories (``y`` is ignored)."""
        _check_target(self.target)
        rfm = self.rfm(X)
        if len(rfm) > self.fit_customers:
            rfm = rfm.sample(n=self.fit_customers, random_state=0)
        self.model_ = BetaGeoModel().fit(rfm)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Return probabilities, shape ``(n, 2)``: columns class 0, class 1."""
        if not hasattr(self, "model_"):
            raise ValidationError("BetaGeoBaseline is not fitted yet; call fit first.")
        buy = self.model_.probability_of_purchase(self.horizon_days / 7.0, self.rfm(X))
        p = 1.0 - buy if self.target == "churn" else buy
        return np.column_stack([1 - p, p])


def default_baselines(*, target: str, horizon_days: int) -> list[Any]:
    """Return the three baselines for ``target``: recency rule, RFM score, BG/NBD."""
    _check_target(target)
    kind: Target = "churn" if target == "churn" else "purchase"
    return [
        RecencyRule(target=kind),
        RFMScore(target=kind),
        BetaGeoBaseline(horizon_days=horizon_days, target=kind),
    ]
