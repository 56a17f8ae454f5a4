"""Every figure renders headless, in English and Chinese, without touching pyplot's state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from figures import render
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from crm_ml.analysis import (
    churn_rate_trend,
    lorenz_curve,
    plot_campaign_uplift,
    plot_churn_trend,
    plot_lorenz,
    plot_retention_curves,
    plot_retention_heatmap,
    plot_revenue_at_risk,
    plot_tier_movement,
    plot_value_quadrant,
    response_uplift,
    revenue_at_risk,
    value_quadrant,
)
from crm_ml.errors import ConfigError

MONTHS = pd.PeriodIndex(["2024-01", "2024-02", "2024-03"], freq="M", name="cohort")
MATRIX = pd.DataFrame(
    [[1.0, 0.5, 0.4], [1.0, 0.3, np.nan], [1.0, np.nan, np.nan]],
    index=MONTHS,
    columns=pd.Index([0, 1, 2], name="months_since"),
)
LIFECYCLE = pd.DataFrame(
    {"active_start": [0, 10, 12], "churned": [0, 2, 3], "churn_rate": [np.nan, 0.2, 0.25]},
    index=MONTHS.rename("period"),
)
TIERS = pd.DataFrame(
    [[0, 3, 0], [0, 5, 2], [0, 1, 4]],
    index=pd.Index(["(none)", "t1", "t2"], name="tier_a"),
    columns=pd.Index(["(none)", "t1", "t2"], name="tier_b"),
)
VALUES = pd.DataFrame(
    {"orders": [1, 3, 5, 2], "aov": [100.0, 50.0, 200.0, 20.0], "revenue": [100.0, 150, 1000, 40]}
)
CONTACTS = pd.DataFrame(
    {
        "campaign_id": ["k1"] * 4 + ["k2"] * 4,
        "group": ["treatment", "treatment", "control", "control"] * 2,
        "responded": [True, False, False, False, True, True, True, False],
    }
)
RISK = pd.DataFrame(
    {"tier": ["t1", "t2"], "p_churn": [0.5, 0.2], "revenue_12m": [300.0, 50.0]}
).assign(revenue_at_risk=lambda f: f["p_churn"] * f["revenue_12m"])

FIGURES = {
    "heatmap": lambda lang: plot_retention_heatmap(MATRIX, lang=lang),
    "curves": lambda lang: plot_retention_curves(MATRIX, lang=lang),
    "churn": lambda lang: plot_churn_trend(churn_rate_trend(LIFECYCLE, window=2), lang=lang),
    "tiers": lambda lang: plot_tier_movement(TIERS, lang=lang),
    "tier_shares": lambda lang: plot_tier_movement(TIERS / 7.0, lang=lang),
    "lorenz": lambda lang: plot_lorenz(lorenz_curve(VALUES["revenue"]), gini_value=0.4, lang=lang),
    "quadrant": lambda lang: plot_value_quadrant(value_quadrant(VALUES), lang=lang),
    "grade": lambda lang: plot_value_quadrant(value_quadrant(VALUES, scheme="grade"), lang=lang),
    "uplift": lambda lang: plot_campaign_uplift(response_uplift(CONTACTS), lang=lang),
    "risk": lambda lang: plot_revenue_at_risk(revenue_at_risk(RISK, by="tier"), lang=lang),
}


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_renders_without_pyplot(name, lang):
    before = plt.get_fignums()
    fig = FIGURES[name](lang)
    png = render(fig)

    assert isinstance(fig, Figure)
    assert png.startswith(b"\x89PNG")
    assert plt.get_fignums() == before


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_chinese_data_draws_in_either_language(lang):
    # Campaign and owner names are Chinese whatever the label language (A7).
    response = response_uplift(CONTACTS).assign(name=["2025 双11大促", "会员日积分加倍"])
    owners = pd.DataFrame(
        {"revenue_at_risk": [10.0, 5.0]},
        index=pd.MultiIndex.from_tuples(
            [("AM010", "罗经理"), ("(unassigned)", "")], names=["owner_id", "owner_name"]
        ),
    )

    for fig in (plot_campaign_uplift(response, lang=lang), plot_revenue_at_risk(owners, lang=lang)):
        assert render(fig).startswith(b"\x89PNG")


def test_campaign_uplift_has_a_title():
    response = response_uplift(CONTACTS)

    assert plot_campaign_uplift(response).axes[0].get_title() == (
        "Campaign uplift over the control group"
    )
    zh_title = plot_campaign_uplift(response, lang="zh").axes[0].get_title()
    assert zh_title == "活动相对对照组的响应提升"


def test_campaign_uplift_reads_in_percentage_points():
    response = response_uplift(CONTACTS)
    axes = plot_campaign_uplift(response).axes[0]
    axes.figure.canvas.draw()

    assert "percentage points" in axes.get_xlabel()
    ticks = [t.get_text() for t in axes.get_xticklabels() if t.get_text()]
    assert ticks and not any("%" in t for t in ticks)
    assert "0" in ticks  # the no-uplift line, unsigned


def test_chinese_labels(monkeypatch):
    fig = plot_retention_heatmap(MATRIX, lang="zh")

    ax = fig.axes[0]
    assert ax.get_xlabel() == "首购后月数"
    assert ax.get_title() == "客户留存率"


def test_unknown_language_is_refused():
    with pytest.raises(ConfigError, match="lang='fr' is not supported"):
        plot_retention_heatmap(MATRIX, lang="fr")


def test_the_heatmap_colours_later_months_against_each_other_not_month_0():
    # Month 0 is 100 % by definition; on a 0-100 % scale every later month read near white.
    fig = plot_retention_heatmap(MATRIX, lang="en")
    image = fig.axes[0].images[0]
    assert image.get_clim()[1] == pytest.approx(0.5)  # the best later month
    fig.canvas.draw()
    assert "50%" in [t.get_text() for t in fig.axes[1].get_yticklabels()]  # the colour bar


def test_the_churn_trend_says_which_mark_is_which_and_starts_at_zero():
    ax = plot_churn_trend(churn_rate_trend(LIFECYCLE, window=2), lang="zh").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["各期", "近2期合计"]
    assert ax.get_ylim()[0] == 0
