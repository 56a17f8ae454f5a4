from __future__ import annotations

import numpy as np
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.metrics import (
    calibration_table,
    classification_metrics,
    expected_calibration_error,
    lift_table,
    precision_at,
)

# Ten customers: scores 1.0, 0.9, ..., 0.1; positives at ranks 1, 2, 4 and 7.
Y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
SCORE = np.linspace(1.0, 0.1, 10)


def test_ece_by_hand() -> None:
    # Bin [0.9, 1.0]: p=0.95 vs y=1 (two customers); bin [0.1, 0.2): 0.15 vs 0 (two).
    y = np.array([1, 1, 0, 0])
    p = np.array([0.95, 0.95, 0.15, 0.15])
    assert expected_calibration_error(y, p) == pytest.approx((2 * 0.05 + 2 * 0.15) / 4)


def test_calibration_table_by_hand() -> None:
    table = calibration_table(np.array([1, 0, 1]), np.array([0.05, 0.05, 0.95]))
    assert table["bin"].tolist() == [0.0, 0.9]
    assert table["customers"].tolist() == [2, 1]
    assert table["observed_rate"].tolist() == [0.5, 1.0]


def test_lift_table_by_hand() -> None:
    table = lift_table(Y, SCORE, n_bins=5)
    assert table["positives"].tolist() == [2, 1, 0, 1, 0]
    assert table["lift"].tolist() == pytest.approx([2.5, 1.25, 0.0, 1.25, 0.0])
    assert table["gains"].tolist() == pytest.approx([0.5, 0.75, 0.75, 1.0, 1.0])
    assert table["cumulative_lift"].iloc[0] == pytest.approx(2.5)


def test_precision_at_shares_and_counts() -> None:
    table = precision_at(Y, SCORE, list_sizes=(0.2, 4))
    assert table["list_size"].tolist() == [2, 4]
    assert table["precision"].tolist() == pytest.approx([1.0, 0.75])
    assert table["recall"].tolist() == pytest.approx([0.5, 0.75])


def test_ties_are_broken_by_position() -> None:
    table = precision_at(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.5]), list_sizes=(1,))
    assert table["precision"].tolist() == [0.0]


def test_classification_metrics() -> None:
    m = classification_metrics(Y, SCORE)
    assert m["roc_auc"] == pytest.approx(20 / 24)
    assert m["positives"] == 4 and m["customers"] == 10
    single = classification_metrics(np.ones(3), np.array([0.2, 0.5, 0.9]))
    assert np.isnan(single["roc_auc"])


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValidationError, match="equal length"):
        lift_table(Y, SCORE[:5])


def test_calibration_by_decile_shows_a_bias_at_the_top():
    from crm_ml.models.metrics import calibration_by_decile

    rng = np.random.default_rng(0)
    p = rng.random(10_000)
    y = (rng.random(10_000) < p).astype(int)
    over = np.where(p > 0.9, np.minimum(p + 0.05, 1.0), p)  # the top tenth over-predicted
    table = calibration_by_decile(y, over)
    assert table["decile"].tolist() == list(range(1, 11))
    assert (table["customers"] == 1_000).all()
    assert table.loc[0, "gap"] == pytest.approx(0.05, abs=0.02)
    assert table.loc[1:, "gap"].abs().max() < 0.03
