"""Figure helpers: headless matplotlib figures with English or Chinese labels.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through
pyplot's global state, so they render the same in a notebook, under papermill
and in a scheduled job without a display. Every figure gets a font list that
covers Chinese whatever its label language, because the data it shows (campaign,
owner and tier names) is Chinese either way: see :func:`crm_ml.plotting.font_families`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from crm_ml.errors import ConfigError
from crm_ml.plotting import apply_fonts

log = logging.getLogger(__name__)

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "cohort": "Acquisition cohort",
        "months_since": "Months since first purchase",
        "customer_retention": "Customer retention",
        "revenue_retention": "Revenue retention (vs. first month)",
        "average": "Average",
        "period": "Period",
        "churn_rate": "Churn rate",
        "churn_rate_period": "Each period",
        "churn_rate_rolling": "Pooled over the last {window} periods",
        "customers": "Customers",
        "customer_share": "Share of customers",
        "revenue_share": "Share of revenue",
        "lorenz": "Revenue concentration (Lorenz curve)",
        "equality": "Equal spend",
        "uplift": "Uplift in response rate, percentage points (treatment − control)",
        "campaign": "Campaign",
        "campaign_uplift": "Campaign uplift over the control group",
        "tier_a": "Tier at start",
        "tier_b": "Tier at end",
        "tier_movement": "Tier movement",
        "aov": "Average order value",
        "frequency": "Orders",
        "value_quadrant": "Value quadrants",
    },
    "zh": {
        "cohort": "获客月份",
        "months_since": "首购后月数",
        "customer_retention": "客户留存率",
        "revenue_retention": "收入留存率（相对首月）",
        "average": "平均",
        "period": "周期",
        "churn_rate": "流失率",
        "churn_rate_period": "各期",
        "churn_rate_rolling": "近{window}期合计",
        "customers": "客户数",
        "customer_share": "客户占比",
        "revenue_share": "收入占比",
        "lorenz": "收入集中度（洛伦兹曲线）",
        "equality": "完全均等",
        "uplift": "响应率提升，百分点（实验组 − 对照组）",
        "campaign": "活动",
        "campaign_uplift": "活动相对对照组的响应提升",
        "tier_a": "期初等级",
        "tier_b": "期末等级",
        "tier_movement": "等级迁移",
        "aov": "客单价",
        "frequency": "购买次数",
        "value_quadrant": "价值象限",
    },
}


def label(key: str, lang: str) -> str:
    """Return the label ``key`` in ``lang`` (``"en"`` or ``"zh"``).

    Raises
    ------
    ConfigError
        If ``lang`` is neither.
    """
    if lang not in LABELS:
        raise ConfigError(f"lang={lang!r} is not supported; use 'en' or 'zh'.")
    return LABELS[lang][key]


def new_figure(width: float = 8.0, height: float = 5.0) -> tuple[Figure, Axes]:
    """Return a figure with one axes, not registered with pyplot."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def finish(fig: Figure, lang: str) -> Figure:
    """Give every text of ``fig`` fonts that draw Chinese and Latin text; return ``fig``."""
    return apply_fonts(fig, lang)


def draw_heatmap(
    ax: Axes, matrix: pd.DataFrame, *, fmt: str, cmap: str = "Blues", vmax: float | None = None
) -> None:
    """Draw ``matrix`` as annotated cells (NaN cells left blank) with its labels as ticks.

    ``vmax`` caps the colour scale (cells above it take the darkest colour).
    """
    values = matrix.to_numpy(dtype="float64")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", vmax=vmax)
    ax.figure.colorbar(image, ax=ax, format=f"{{x:{fmt}}}")  # as the cells read: 30%, not 0.3
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(values.shape[0]), [str(i) for i in matrix.index])
    finite = values[np.isfinite(values)]
    top = finite.max() if vmax is None or not finite.size else min(finite.max(), vmax)
    middle = (finite.min() + top) / 2 if finite.size else 0.0
    if values.size > 400:  # too many cells to read their numbers
        return
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            color = "white" if value > middle else "black"
            ax.text(col, row, format(value, fmt), ha="center", va="center", fontsize=7, c=color)
