"""The BG/NBD model of repeat purchasing (Fader, Hardie & Lee, 2005), fitted by scipy.

Each customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)`` while alive
and, after any purchase, drops out with probability ``p ~ Beta(a, b)``. From a
customer's repeat count ``x``, the time of the last repeat ``t_x`` and the age
``T`` (both from the first purchase), the model gives the probability of being
alive, the expected number of purchases in the next ``t`` periods and the
probability of at least one. Time is in whatever unit ``rfm_summary`` used
(weeks by default, as in the published CDNOW fit).
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from crm_ml.errors import ValidationError

log = logging.getLogger(__name__)

RFM_COLUMNS = ("frequency", "recency", "T")
_FREQ_DAYS = {"D": 1.0, "W": 7.0}


def _check_columns(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{what} is missing column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, frame.columns))}."
        )


def rfm_summary(
    transactions: pd.DataFrame,
    calibration_end: str | date | pd.Timestamp,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    freq: str = "W",
) -> pd.DataFrame:
    """Summarise transactions into the BG/NBD inputs, one row per customer.

    Purchases on the same calendar day count as one transaction. Only
    transactions on or before ``calibration_end`` (an inclusive date, as in
    the published CDNOW calibration period 1997-01-01..1997-09-30) are used.

    Parameters
    ----------
    freq : {"W", "D"}
        Time unit of ``recency`` and ``T``: weeks (days / 7) or days.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_col``: ``frequency`` (repeat purchase days),
        ``recency`` (first to last purchase) and ``T`` (first purchase to
        ``calibration_end``), both in ``freq`` units.
    """
    _check_columns(transactions, (customer_col, datetime_col), "transactions")
    if freq not in _FREQ_DAYS:
        raise ValidationError(f"freq must be one of {', '.join(_FREQ_DAYS)}, got {freq!r}.")
    end = pd.Timestamp(calibration_end).normalize()
    days = pd.to_datetime(transactions[datetime_col]).dt.normalize()
    frame = pd.DataFrame({"c": transactions[customer_col].to_numpy(), "d": days.to_numpy()})
    frame = frame[frame["d"] <= end].drop_duplicates()
    grouped = frame.groupby("c")["d"].agg(["min", "max", "size"])
    unit = _FREQ_DAYS[freq]
    out = pd.DataFrame(
        {
            "frequency": (grouped["size"] - 1).astype(float),
            "recency": (grouped["max"] - grouped["min"]).dt.days / unit,
            "T": (end - grouped["min"]).dt.days / unit,
        }
    )
    out.index.name = customer_col
    return out


def _log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4))


class BetaGeoModel:
    """BG/NBD fitted by maximum likelihood over ``(frequency, recency, T)``.

    Parameters
    ----------
    penalizer : float
        L2 penalty on the four parameters (0 = plain maximum likelihood).

    Attributes
    ----------
    params_ : dict[str, float]
        ``r``, ``alpha``, ``a``, ``b``.
    log_likelihood_ : float
        Total log-likelihood at the optimum.
    """

    def __init__(self, *, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    def fit(self, rfm: pd.DataFrame) -> BetaGeoModel:
        """Fit on a frame with ``frequency``, ``recency`` and ``T`` (see :func:`rfm_summary`)."""
        x, t_x, T = self._inputs(rfm)
        # Customers with the same (x, t_x, T) share a likelihood term: fit on the unique rows.
        keys = pd.DataFrame({"x": x, "t": t_x, "T": T})
        counts = keys.value_counts().reset_index(name="n")
        ux, ut, uT, w = (counts[c].to_numpy(float) for c in ("x", "t", "T", "n"))

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = float(np.sum(w * _log_likelihood(params, ux, ut, uT)))
            return -ll / w.sum() + self.penalizer * float(np.sum(params**2))

        start = np.log([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
        # Bounds keep degenerate fits (e.g. r -> infinity, the Poisson limit) finite.
        bounds = [(-12.0, 12.0)] * 4
        res = minimize(
            objective,
            start,
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-12},
        )
        res = minimize(objective, res.x, method="L-BFGS-B", bounds=bounds)
        r, alpha, a, b = np.exp(res.x)
        self.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        self.log_likelihood_ = -float(res.fun) * float(w.sum())
        log.info("BG/NBD fitted on %d customers: %s", int(w.sum()), self.params_)
        return self

    @staticmethod
    def _inputs(rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _check_columns(rfm, RFM_COLUMNS, "BG/NBD input")
        x, t_x, T = (rfm[c].to_numpy(dtype=float) for c in RFM_COLUMNS)
        bad = (x < 0) | (t_x < 0) | (t_x > T) | ~np.isfinite(x + t_x + T)
        if bad.any():
            raise ValidationError(
                f"{int(bad.sum())} row(s) break 0 <= recency <= T and frequency >= 0 "
                f"(first at position {int(np.argmax(bad))}); check the RFM summary."
            )
        return x, t_x, T

    def _fitted(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise ValidationError("BetaGeoModel is not fitted yet; call fit first.")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def probability_alive(self, rfm: pd.DataFrame) -> np.ndarray:
        """Return P(still a customer at T | x, t_x, T) for each row."""
        r, alpha, a, b = self._fitted()
        x, t_x, T = self._inputs(rfm)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * np.exp(log_ratio), 0.0)
        return np.asarray(1.0 / (1.0 + odds))

    def probability_of_purchase(self, t: float, rfm: pd.DataFrame) -> np.ndarray:
        """Return P(at least one purchase in (T, T + t]) for each row.

        Alive customers buy at a rate whose posterior is Gamma(r + x, alpha + T),
        and cannot drop out before their next purchase.
        """
        r, alpha, _, _ = self._fitted()
        x, _, T = self._inputs(rfm)
        no_purchase_if_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        return self.probability_alive(rfm) * (1.0 - no_purchase_if_alive)

    def expected_purchases(self, t: float, rfm: pd.DataFrame) -> np.ndarray:
        """Return E[purchases in (T, T + t] | x, t_x, T] (eq. 10 of the paper)."""
        r, alpha, a, b = self._fitted()
        x, t_x, T = self._inputs(rfm)
        z = t / (alpha + T + t)
        ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        head = (a + b + x - 1) / (a - 1)  # a < 1 is fine: the hypergeometric term changes sign
        body = 1.0 - ratio * hyp2f1(r + x, b + x, a + b + x - 1, z)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * np.exp(log_ratio), 0.0)
        return np.asarray(head * body / (1.0 + odds))


def simulate_beta_geo(params: dict[str, float], T: np.ndarray, *, seed: int = 0) -> pd.DataFrame:
    """Simulate ``frequency``/``recency``/``T`` from a BG/NBD process with known ``params``.

    Returns
    -------
    pandas.DataFrame
        One row per entry of ``T``: ``frequency``, ``recency``, ``T``.
    """
    rng = np.random.default_rng(seed)
    T = np.asarray(T, dtype=float)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], size=T.size)
    drop = rng.beta(params["a"], params["b"], size=T.size)
    t_now, x, t_x = np.zeros(T.size), np.zeros(T.size), np.zeros(T.size)
    active = np.ones(T.size, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        t_next = t_now[idx] + rng.exponential(1.0 / np.maximum(lam[idx], 1e-12))
        bought = t_next <= T[idx]
        hit = idx[bought]
        x[hit] += 1
        t_x[hit] = t_next[bought]
        t_now[hit] = t_next[bought]
        died = rng.random(hit.size) < drop[hit]
        active[idx[~bought]] = False
        active[hit[died]] = False
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T})
