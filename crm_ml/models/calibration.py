"""Probability calibration fitted on a later snapshot than the trees.

A churn model's trees learn a ranking from older snapshots; the share of
customers who actually churn drifts with the season, promotions and the
programme's rules. Calibrating on the most recent labelled snapshot maps the
trees' scores to the probabilities that hold *now*. The calibrator is a small
monotone map, stored as plain numbers (no pickle), so it travels with the
model through MLflow and can be read back anywhere.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from crm_ml.errors import ValidationError

CalibrationMethod = Literal["isotonic", "sigmoid"]
CALIBRATION_METHODS: tuple[str, ...] = ("isotonic", "sigmoid")

_EPS = 1e-6


def _check_inputs(scores: np.ndarray, y: np.ndarray) -> None:
    if scores.shape != y.shape:
        raise ValidationError(
            f"Calibration scores and labels differ in length: {scores.shape[0]} vs {y.shape[0]}."
        )
    if np.unique(y).size < 2:
        raise ValidationError(
            "The calibration snapshot holds a single class; it needs both positives and "
            "negatives. Use a later snapshot with more customers, or calibration='none'."
        )


def _fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return ``(slope, intercept)`` of a logistic fit on the scores' log-odds."""
    z = logit(np.clip(scores, _EPS, 1 - _EPS))

    def loss(w: np.ndarray) -> float:
        p = np.clip(expit(w[0] * z + w[1]), _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    res = minimize(loss, x0=np.array([1.0, 0.0]), method="BFGS")
    return float(res.x[0]), float(res.x[1])


def _fit_isotonic(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
    x_knots = np.asarray(iso.X_thresholds_, float)
    y_knots = _off_the_bounds(x_knots, np.asarray(iso.y_thresholds_, float), scores, y)
    return x_knots, y_knots


def _off_the_bounds(
    x_knots: np.ndarray, y_knots: np.ndarray, scores: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Move an end step of exactly 0 or 1 to the Jeffreys estimate of its own rows.

    When every customer of the lowest (highest) step did not (did) churn,
    isotonic regression says 0 % (100 %): certainty no sample shows. Its
    Jeffreys estimate, (k + 0.5) / (n + 1), is off the bound by less the more
    rows back it, and kept within its neighbour's value, so the map stays monotone.
    """
    y_knots = y_knots.copy()
    low, high = y_knots == y_knots[0], y_knots == y_knots[-1]
    if y_knots[0] == 0.0:
        rows = scores <= x_knots[low].max()
        above = y_knots[~low].min() if (~low).any() else 1.0
        y_knots[low] = min(_jeffreys(y[rows]), above)
    if y_knots[-1] == 1.0:
        rows = scores >= x_knots[high].min()
        below = y_knots[~high].max() if (~high).any() else 0.0
        y_knots[high] = max(_jeffreys(y[rows]), below)
    return y_knots


def _jeffreys(y: np.ndarray) -> float:
    return float((y.sum() + 0.5) / (y.size + 1))


class ProbabilityCalibrator:
    """A monotone map from a model's raw probabilities to calibrated ones.

    Parameters
    ----------
    method : {"isotonic", "sigmoid"}
        Isotonic regression (flexible, needs a few thousand rows) or Platt
        scaling on the log-odds (two numbers, robust on small snapshots).

    Attributes
    ----------
    params_ : dict
        ``{"x": [...], "y": [...]}`` (isotonic knots) or ``{"slope", "intercept"}``.
    """

    def __init__(self, method: CalibrationMethod = "isotonic") -> None:
        self.method = method

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        """Fit the map on raw probabilities ``scores`` and 0/1 labels ``y``."""
        if self.method not in CALIBRATION_METHODS:
            raise ValidationError(
                f"Unknown calibration method {self.method!r}; expected one of "
                f"{', '.join(CALIBRATION_METHODS)}."
            )
        scores = np.asarray(scores, float)
        y = np.asarray(y, float)
        _check_inputs(scores, y)
        if self.method == "sigmoid":
            slope, intercept = _fit_platt(scores, y)
            self.params_: dict[str, Any] = {"slope": slope, "intercept": intercept}
        else:
            x_knots, y_knots = _fit_isotonic(scores, y)
            self.params_ = {"x": x_knots.tolist(), "y": y_knots.tolist()}
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities for raw probabilities ``scores``."""
        if not hasattr(self, "params_"):
            raise ValidationError("This calibrator is not fitted yet; call fit first.")
        scores = np.asarray(scores, float)
        if self.method == "sigmoid":
            z = logit(np.clip(scores, _EPS, 1 - _EPS))
            return np.asarray(expit(self.params_["slope"] * z + self.params_["intercept"]))
        return np.interp(scores, self.params_["x"], self.params_["y"])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description: ``{"method": ..., "params": ...}``."""
        return {"method": self.method, "params": self.params_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbabilityCalibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        calibrator = cls(method=data["method"])
        calibrator.params_ = dict(data["params"])
        return calibrator
