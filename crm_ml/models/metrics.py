"""Metrics of a scored list: discrimination, calibration, lift and list precision.

Every function takes the true 0/1 labels and a score (higher = more likely
positive) and returns plain numbers or a small frame. Ties in the score are
broken by position, so a list of size *k* always holds exactly *k* customers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from crm_ml.errors import ValidationError

#: Default list sizes, as shares of the scored customers.
DEFAULT_LIST_SIZES: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20, 0.30)


def _arrays(y: object, score: object) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y, dtype=float)
    scores = np.asarray(score, dtype=float)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValidationError(
            f"Labels and scores must be 1-D of equal length; got {labels.shape} and {scores.shape}."
        )
    if labels.size == 0:
        raise ValidationError("No rows to evaluate: the labels are empty.")
    return labels, scores


def _rank_order(scores: np.ndarray) -> np.ndarray:
    """Return indices from highest to lowest score; ties keep their original order."""
    return np.argsort(-scores, kind="stable")


def expected_calibration_error(y: object, probability: object, *, n_bins: int = 10) -> float:
    """Return the share-weighted mean gap between predicted and observed rates.

    Bins are equal-width on ``[0, 1]``; empty bins are skipped.
    """
    labels, p = _arrays(y, probability)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)
    mean_y = np.bincount(bins, weights=labels, minlength=n_bins)
    used = counts > 0
    gaps = np.abs(mean_p[used] - mean_y[used]) / counts[used]
    return float(np.sum(gaps * counts[used]) / labels.size)


def calibration_table(y: object, probability: object, *, n_bins: int = 10) -> pd.DataFrame:
    """Return observed against predicted rates per equal-width probability bin.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin`` (lower edge), ``customers``,
        ``mean_predicted``, ``observed_rate``.
    """
    labels, p = _arrays(y, probability)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": bins / n_bins, "p": p, "y": labels})
    out = frame.groupby("bin").agg(
        customers=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean")
    )
    return out.reset_index()


def classification_metrics(y: object, probability: object) -> dict[str, float]:
    """Return discrimination and calibration metrics of probabilities against 0/1 labels.

    Keys: ``roc_auc``, ``pr_auc``, ``brier``, ``ece``, ``customers``,
    ``positives``, ``base_rate``.

    ROC-AUC and PR-AUC are NaN when the labels hold a single class.
    """
    labels, p = _arrays(y, probability)
    two_classes = np.unique(labels).size == 2
    return {
        "roc_auc": float(roc_auc_score(labels, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, p)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(labels, np.clip(p, 0, 1))),
        "ece": expected_calibration_error(labels, np.clip(p, 0, 1)),
        "customers": float(labels.size),
        "positives": float(labels.sum()),
        "base_rate": float(labels.mean()),
    }


def calibration_by_decile(y: object, probability: object, *, n_bins: int = 10) -> pd.DataFrame:
    """Return predicted against observed rates per decile of the scores (1 = highest).

    Equal-width bins (:func:`calibration_table`) put most customers of a skewed
    score in one or two bins; deciles hold a tenth of the customers each, so a
    bias where lists are cut (over-predicting the top tenth by 5 points) shows.

    Returns
    -------
    pandas.DataFrame
        One row per decile: ``decile``, ``customers``, ``mean_predicted``,
        ``observed_rate`` and ``gap`` (predicted minus observed).
    """
    labels, p = _arrays(y, probability)
    order = _rank_order(p)
    decile = np.arange(labels.size) * n_bins // max(labels.size, 1) + 1
    frame = pd.DataFrame({"decile": decile, "p": p[order], "y": labels[order]})
    out = frame.groupby("decile").agg(
        customers=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean")
    )
    out["gap"] = out["mean_predicted"] - out["observed_rate"]
    return out.reset_index()


def lift_table(y: object, score: object, *, n_bins: int = 10) -> pd.DataFrame:
    """Return lift and cumulative gains by score decile (decile 1 = highest scores).

    Returns
    -------
    pandas.DataFrame
        One row per decile: ``decile``, ``customers``, ``positives``,
        ``positive_rate``, ``lift`` (rate / overall rate), ``cumulative_share``
        (of customers), ``gains`` (cumulative share of all positives) and
        ``cumulative_lift``.
    """
    labels, scores = _arrays(y, score)
    n = labels.size
    ordered = labels[_rank_order(scores)]
    decile = np.arange(n) * n_bins // n + 1
    frame = pd.DataFrame({"decile": decile, "y": ordered})
    out = frame.groupby("decile").agg(customers=("y", "size"), positives=("y", "sum"))
    base = labels.mean() if labels.sum() > 0 else np.nan
    out["positive_rate"] = out["positives"] / out["customers"]
    out["lift"] = out["positive_rate"] / base
    out["cumulative_share"] = out["customers"].cumsum() / n
    out["gains"] = out["positives"].cumsum() / max(labels.sum(), 1)
    out["cumulative_lift"] = out["gains"] / out["cumulative_share"]
    return out.reset_index()


def precision_at(
    y: object, score: object, *, list_sizes: Sequence[float] = DEFAULT_LIST_SIZES
) -> pd.DataFrame:
    """Return precision and recall of the top of the list at each list size.

    Parameters
    ----------
    list_sizes : sequence of float or int
        A value below 1 is a share of customers, otherwise a number of customers.

    Returns
    -------
    pandas.DataFrame
        One row per size: ``list_size`` (customers), ``share``, ``precision``,
        ``recall``, ``lift``.
    """
    labels, scores = _arrays(y, score)
    n = labels.size
    hits = np.cumsum(labels[_rank_order(scores)])
    total = max(labels.sum(), 1)
    rows = []
    for size in list_sizes:
        k = int(np.clip(round(size * n) if size < 1 else int(size), 1, n))
        precision = hits[k - 1] / k
        rows.append(
            {
                "list_size": k,
                "share": k / n,
                "precision": precision,
                "recall": hits[k - 1] / total,
                "lift": precision / labels.mean() if labels.mean() > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows)
