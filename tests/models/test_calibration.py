from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.calibration import ProbabilityCalibrator
from crm_ml.models.estimators import ChurnModel
from crm_ml.models.metrics import expected_calibration_error

from .synthetic import TINY, make_snapshot

FEATURES = ["recency_days", "interpurchase_mean_days", "orders_lifetime", "complaints_90d"]


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrator_fixes_a_known_distortion(method: str) -> None:
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(true_p.size) < true_p).astype(float)
    distorted = true_p**3  # far too low everywhere
    calibrator = ProbabilityCalibrator(method).fit(distorted, y)
    before = expected_calibration_error(y, distorted)
    after = expected_calibration_error(y, calibrator.transform(distorted))
    assert before > 0.2
    assert after < 0.05


def test_calibrator_round_trips_through_a_dict() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    calibrator = ProbabilityCalibrator("isotonic").fit(scores, np.array([0, 0, 1, 0, 1, 1]))
    again = ProbabilityCalibrator.from_dict(calibrator.to_dict())
    np.testing.assert_array_equal(again.transform(scores), calibrator.transform(scores))
    assert again.transform(np.array([0.3]))[0] == 0.5  # the middle step: 1 of 2


def test_isotonic_never_says_0_or_100_percent() -> None:
    # The lowest 2 customers did not churn, the top 3 all did: not certainty, but evidence
    # as strong as the number of rows behind it (Jeffreys: (k + 0.5) / (n + 1)).
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9, 0.95])
    calibrator = ProbabilityCalibrator("isotonic").fit(scores, np.array([0, 0, 1, 0, 1, 1, 1]))
    calibrated = calibrator.transform(np.array([0.0, 0.1, 0.2, 0.35, 0.8, 0.95, 1.0]))
    low, high = 0.5 / 3, 3.5 / 4  # 0 of 2 and 3 of 3; the middle step, 1 of 2, stays 0.5
    assert calibrated.tolist() == pytest.approx([low, low, low, 0.5, high, high, high])


def test_more_rows_at_an_end_step_move_it_closer_to_the_bound() -> None:
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=20_000)
    y = (rng.random(scores.size) < scores).astype(float)
    y[scores > 0.98], y[scores < 0.02] = 1.0, 0.0  # certain at both ends, 400 rows each
    calibrated = ProbabilityCalibrator("isotonic").fit(scores, y).transform(scores)
    assert 0.0 < calibrated.min() < 0.5 / 400 and 1 - 0.5 / 400 < calibrated.max() < 1.0
    assert np.all(np.diff(calibrated[np.argsort(scores)]) >= 0)  # still monotone


def test_calibrator_errors() -> None:
    with pytest.raises(ValidationError, match="single class"):
        ProbabilityCalibrator().fit(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValidationError, match="Unknown calibration method"):
        ProbabilityCalibrator("beta").fit(np.array([0.1, 0.2]), np.array([0, 1]))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not fitted"):
        ProbabilityCalibrator().transform(np.array([0.5]))


def test_calibration_on_a_later_snapshot_improves_ece_after_drift() -> None:
    # Trees learn on a snapshot where churn is rare; by the later snapshots it has risen
    # (shift +1.5 in log-odds), so the raw probabilities are far too low.
    train = make_snapshot(pd.Timestamp("2024-01-01"), 1500, seed=11, shift=-1.5)
    cal = make_snapshot(pd.Timestamp("2024-04-01"), 1500, seed=12)
    test = make_snapshot(pd.Timestamp("2024-07-01"), 1500, seed=13)
    y_train, y_cal, y_test = (f["churned"].to_numpy() for f in (train, cal, test))
    raw = ChurnModel(**TINY, calibration="none").fit(train[FEATURES], y_train)
    calibrated = ChurnModel(**TINY).fit(
        train[FEATURES], y_train, calibration=(cal[FEATURES], y_cal)
    )
    ece_raw = expected_calibration_error(y_test, raw.predict_proba(test[FEATURES])[:, 1])
    ece_cal = expected_calibration_error(y_test, calibrated.predict_proba(test[FEATURES])[:, 1])
    assert ece_raw > 0.1
    assert ece_cal < ece_raw / 2
