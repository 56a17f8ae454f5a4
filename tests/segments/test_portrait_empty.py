"""Portraits of an empty segment, or of ids the features frame does not hold."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from customer_helpers import features

from crm_ml.errors import ValidationError
from crm_ml.segments import plot_portrait, segment_portrait
from crm_ml.segments.portrait import MIN_PORTRAIT_SIZE


def _base() -> pd.DataFrame:
    return features(
        recency_days=[90.0, 10.0, 70.0, 5.0],
        tier_level=[1, 2, 1, 0],
        acquisition_channel=["store", "app", "app", "web"],
    )


def test_an_empty_segment_has_no_shares_and_its_figure_says_so() -> None:
    portrait = segment_portrait(_base(), [])
    assert portrait["segment"].isna().all() and portrait["difference"].isna().all()
    axes = plot_portrait(portrait, title="0 of 4 customers").axes[0]
    assert not axes.patches  # no bars
    assert [t.get_text() for t in axes.texts] == [
        "No customers in this segment: nothing to compare with the base."
    ]
    assert axes.get_title() == "0 of 4 customers"


def test_the_figure_follows_the_language() -> None:
    axes = plot_portrait(segment_portrait(_base(), []), lang="zh").axes[0]
    assert axes.get_title() == "分群画像"
    assert [t.get_text() for t in axes.texts] == ["该分群没有客户，无法与整体比较。"]
    bars = plot_portrait(segment_portrait(_base(), ["c1"], min_size=1), lang="zh").axes[0]
    assert bars.get_xlabel().startswith("分群与整体之差")


def test_members_none_of_which_are_in_the_frame_are_refused() -> None:
    with pytest.raises(ValidationError, match="None of the 2 members given is in the features"):
        segment_portrait(_base(), ["ZZZ", "YYY"])


def test_members_missing_from_the_frame_are_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="crm_ml.segments.portrait"):
        portrait = segment_portrait(_base(), ["c1", "ZZZ"], min_size=1)
    assert "1 of 2 members are not in the features frame" in caplog.text
    means = portrait[portrait["level"] == "mean"].set_index("feature")
    assert means.loc["recency_days", "segment"] == 90.0


def test_a_segment_too_small_to_hide_its_members_gets_no_portrait() -> None:
    # One customer's "portrait" would show their age band, gender and purchases.
    base = pd.concat([_base()] * 5).set_axis([f"c{i}" for i in range(20)])
    small = segment_portrait(base, [f"c{i}" for i in range(MIN_PORTRAIT_SIZE - 1)])
    assert small["segment"].isna().all() and small.attrs["members"] == MIN_PORTRAIT_SIZE - 1
    axes = plot_portrait(small, lang="zh").axes[0]
    assert not axes.patches
    assert [t.get_text() for t in axes.texts] == [
        f"该分群少于{MIN_PORTRAIT_SIZE}位客户：画像会描述到个人，不予显示。"
    ]
    enough = segment_portrait(base, [f"c{i}" for i in range(MIN_PORTRAIT_SIZE)])
    assert enough["segment"].notna().any()
