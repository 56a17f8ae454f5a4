"""Reasons explain the score's side of 50/50: what raises a high score, what lowers a low one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.reasons import explain, reasons_frame, reasons_json

IDS = pd.Index(["LOW", "HIGH"], name="customer_id")
FEATURES = pd.DataFrame(
    {
        "recency_days": [591.0, 3.0],
        "interpurchase_mean_days": [48.0, 30.0],
        "discount_share": [0.15, 0.4],
        "days_since_first_order": [688.0, 400.0],
        "browse_events_since_last_order": [0.0, 39.0],
        "points_expiring_30d": [0.0, 800.0],
    },
    index=IDS,
)
# A purchase propensity: LOW (log-odds -6.3) is held down by its long lapse, though a
# discount share and its tenure lift it a little; HIGH (log-odds +0.67) is lifted.
CONTRIB = pd.DataFrame(
    {
        "recency_days": [-3.0, 1.5],
        "interpurchase_mean_days": [-0.5, 0.0],
        "discount_share": [0.12, -0.3],
        "days_since_first_order": [0.09, 0.1],
        "browse_events_since_last_order": [-0.8, 0.97],
        "points_expiring_30d": [0.0, 0.4],
        "bias": [-2.0, -2.0],
    },
    index=IDS,
)


def rows(frame: pd.DataFrame, cid: str) -> pd.DataFrame:
    return frame[frame["customer_id"] == cid]


def test_a_low_score_is_explained_by_what_lowers_it() -> None:
    zh = reasons_frame(CONTRIB, FEATURES, top_k=3, language="zh")
    low = rows(zh, "LOW")
    # Only the two lowering topics: the weak lifts (discount, tenure) do not pad the list.
    assert low["text"].tolist() == ["↓已591天未购买，平时约每48天购买一次", "↓上次购买后未再浏览"]
    assert low["direction"].tolist() == ["lowers", "lowers"]
    assert low["contribution"].tolist() == pytest.approx([-3.5, -0.8])
    en = rows(reasons_frame(CONTRIB, FEATURES, top_k=3), "LOW")["text"].tolist()
    assert en == [
        "↓no purchase for 591 days, usually every 48",
        "↓no browsing since the last order",
    ]


def test_a_high_score_keeps_what_raises_it_unmarked() -> None:
    high = rows(reasons_frame(CONTRIB, FEATURES, top_k=3, language="zh"), "HIGH")
    assert high["text"].tolist() == [
        "3天前刚购买，平时约每30天购买一次",
        "上次购买后浏览39次",
        "30天内将有800积分过期",
    ]
    assert high["direction"].tolist() == ["raises"] * 3
    assert high["contribution"].tolist() == pytest.approx([1.5, 0.97, 0.4])


def test_the_calibrated_probability_decides_the_side_when_given() -> None:
    # Calibrated, LOW sits exactly at 0.5 (raises: the line belongs to "likely") and HIGH below.
    frame = reasons_frame(CONTRIB, FEATURES, top_k=2, language="zh", probability=[0.5, 0.3])
    assert rows(frame, "LOW")["text"].tolist() == ["折扣消费占比15%", "首次购买于688天前"]
    assert rows(frame, "HIGH")["text"].tolist() == ["↓折扣消费占比40%"]
    with pytest.raises(ValidationError, match="Probability and contributions differ in length"):
        reasons_frame(CONTRIB, FEATURES, probability=[0.5])


def test_json_records_the_direction_and_a_signed_contribution() -> None:
    series = reasons_json(CONTRIB, FEATURES, top_k=1, language="zh")
    assert json.loads(series["LOW"]) == [
        {
            "feature": "recency",
            "text": "↓已591天未购买，平时约每48天购买一次",
            "actionable": False,
            "direction": "lowers",
            "contribution": -3.5,
        }
    ]
    assert json.loads(series["HIGH"])[0]["direction"] == "raises"
    points = json.loads(reasons_json(CONTRIB, FEATURES, top_k=3)["HIGH"])[2]
    assert (points["actionable"], points["direction"]) == (True, "raises")


def test_min_contribution_is_a_strength_in_the_scores_direction() -> None:
    frame = reasons_frame(CONTRIB, FEATURES, top_k=3, min_contribution=1.0)
    assert frame["topic"].tolist() == ["recency", "recency"]
    assert frame["contribution"].tolist() == pytest.approx([-3.5, 1.5])


class _Calibrated:
    """A fitted model whose calibrated probability disagrees with its trees' log-odds."""

    def explain_proba(self, features: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        return np.array([0.55, 0.9]), CONTRIB.loc[features.index]


def test_explain_follows_the_calibrated_probability() -> None:
    frame = explain(_Calibrated(), FEATURES, top_k=1, language="zh")
    assert frame["text"].tolist() == ["折扣消费占比15%", "3天前刚购买，平时约每30天购买一次"]
    assert frame["direction"].tolist() == ["raises", "raises"]
