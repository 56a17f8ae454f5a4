"""Backtest figures follow the settings' language, draw every glyph, and explain every mark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from figures import render
from matplotlib import pyplot as plt
from matplotlib.axes import Axes

from crm_ml.errors import ValidationError
from crm_ml.models.metrics import lift_table
from crm_ml.models.plots import calibration_figure, lift_figure

RNG = np.random.default_rng(3)
PREDICTIONS = pd.DataFrame(
    {"churned": RNG.integers(0, 2, 200), "model": RNG.random(200), "recency_rule": RNG.random(200)}
)
LIFT = pd.concat(
    [
        lift_table(PREDICTIONS["churned"], PREDICTIONS[m]).assign(model=m)
        for m in ("model", "recency_rule")
    ],
    ignore_index=True,
)
FIGURES = {
    "calibration": lambda lang: calibration_figure(PREDICTIONS, label="churned", language=lang),
    "lift": lambda lang: lift_figure(LIFT, language=lang),
}


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None, f"no legend on {ax.get_title()!r}"
    return [t.get_text() for t in legend.get_texts()]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_renders_every_glyph_without_pyplot(name: str, lang: str) -> None:
    before = plt.get_fignums()
    assert render(FIGURES[name](lang)).startswith(b"\x89PNG")
    assert plt.get_fignums() == before


def test_chinese_calibration_figure() -> None:
    ax, shares = calibration_figure(PREDICTIONS, label="churned", language="zh").axes
    assert ax.get_title() == "测试快照上的概率校准"
    assert (shares.get_xlabel(), ax.get_ylabel()) == ("平均预测概率", "实际发生率")
    assert legend_texts(ax) == ["完美校准", "模型", "基线：最近购买天数规则"]
    assert shares.get_ylabel() == "客户占比（模型）"


def test_the_calibration_figure_shows_where_customers_are() -> None:
    # 60% of customers given certainty: the panel below the curve shows the pile-up at 1.
    certain = PREDICTIONS.assign(model=np.where(np.arange(200) < 120, 1.0, 0.35))
    _, shares = calibration_figure(certain, label="churned", language="en").axes
    heights = [bar.get_height() for bar in shares.patches]
    assert len(heights) == 10 and sum(heights) == pytest.approx(1.0)
    assert heights[-1] == pytest.approx(0.6) and heights[3] == pytest.approx(0.4)
    assert "60%" in [text.get_text() for text in shares.texts]


def test_chinese_lift_figure_with_a_legend_on_both_panels() -> None:
    lift_ax, gains_ax = lift_figure(LIFT, language="zh").axes
    assert lift_ax.get_title() == "各十分位提升度"
    assert lift_ax.get_xlabel() == "十分位（1 = 得分最高）"
    assert gains_ax.get_title() == "累计增益"
    assert gains_ax.get_xlabel() == "触达客户占比"
    # Which bars are which model, and what the dashed line at 1 means.
    assert sorted(legend_texts(lift_ax)) == sorted(["随机排序", "模型", "基线：最近购买天数规则"])
    assert sorted(legend_texts(gains_ax)) == sorted(legend_texts(lift_ax))


def test_english_lift_panel_has_a_legend() -> None:
    lift_ax, _ = lift_figure(LIFT, language="en").axes
    assert lift_ax.get_title() == "Lift by decile"
    assert sorted(legend_texts(lift_ax)) == ["baseline: recency rule", "model", "random order"]


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValidationError, match="Figure language must be one of zh, en, got 'fr'"):
        lift_figure(LIFT, language="fr")


def _checks(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    """A check_models frame of measured runs: (model, as_of, roc_auc, actual / expected)."""
    frame = pd.DataFrame(
        [
            {
                "model": model,
                "as_of": pd.Timestamp(day),
                "status": "measured",
                "roc_auc": auc,
                "auc_low": auc - 0.01,
                "auc_high": auc + 0.01,
                "backtest_auc": auc - 0.005,
                "expected": 100.0,
                "actual": 100.0 * ratio,
            }
            for model, day, auc, ratio in rows
        ]
    )
    return frame.set_index(["model", "as_of"])


def test_runs_of_two_models_on_one_day_are_drawn_apart_on_a_tight_date_axis() -> None:
    from matplotlib.dates import date2num, num2date

    from crm_ml.models.plots import outcomes_figure

    checks = _checks(
        ("crm-churn", "2025-10-03", 0.91, 0.98), ("crm-propensity", "2025-10-03", 0.90, 1.1)
    )
    auc_ax, ratio_ax = outcomes_figure(checks, language="en").axes

    points = [line.get_xdata()[0] for line in auc_ax.get_lines() if line.get_marker() == "o"]
    assert len(points) == 2 and points[0] != points[1]  # neither interval hides the other
    low, high = (num2date(x).date().isoformat() for x in auc_ax.get_xlim())
    assert "2025-08-01" < low < "2025-10-03" < high < "2025-12-01"  # not years of empty axis
    assert [t.get_text() for t in auc_ax.get_xticklabels()] == ["2025-10-03"]
    assert date2num(pd.Timestamp("2025-10-03")) in auc_ax.get_xticks()
    for ax in (auc_ax, ratio_ax):  # below the panel: inside, it covered the points
        assert ax.get_legend() is not None and ax.get_legend().get_bbox_to_anchor().y0 < ax.bbox.y0
