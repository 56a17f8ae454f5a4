"""Backtest figures: a calibration (reliability) plot and a lift / gains chart.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg
canvas), never through ``pyplot``: no global state, no display needed, and
notebooks show them as they show any Figure. Their titles, axes and legends
are in the settings' language (``zh`` by default, like the reasons), with fonts
that draw Chinese either way (:func:`crm_ml.plotting.apply_fonts`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from crm_ml.config import LANGUAGES
from crm_ml.errors import ValidationError
from crm_ml.models.metrics import calibration_table
from crm_ml.plotting import apply_fonts

#: The settings' default language (``CRM_ML_LANGUAGE`` unset), used when none is given.
DEFAULT_LANGUAGE = "zh"

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "calibration": "Calibration on the test snapshot",
        "mean_predicted": "mean predicted probability",
        "observed_rate": "observed rate",
        "perfect": "perfect calibration",
        "customer_share": "customers (model)",
        "lift": "Lift by decile",
        "decile": "decile (1 = highest score)",
        "lift_axis": "lift (rate in the decile ÷ overall rate)",
        "random": "random order",
        "gains": "Cumulative gains",
        "contacted": "share of customers contacted",
        "found": "share of positives found",
        "ranking": "How past scores ranked customers (ROC-AUC, 95% interval)",
        "scored_on": "scored as of",
        "auc": "ROC-AUC on what customers then did",
        "backtest": "its backtest AUC",
        "predicted": "Predicted against actual",
        "actual_ratio": "customers who did ÷ customers predicted",
        "calibrated": "as predicted",
        "tolerance": "within 10%: no alert",
        "none_measured": "No scoring run has a closed outcome window yet",
    },
    "zh": {
        "calibration": "测试快照上的概率校准",
        "mean_predicted": "平均预测概率",
        "observed_rate": "实际发生率",
        "perfect": "完美校准",
        "customer_share": "客户占比（模型）",
        "lift": "各十分位提升度",
        "decile": "十分位（1 = 得分最高）",
        "lift_axis": "提升度（该组发生率 ÷ 总体发生率）",
        "random": "随机排序",
        "gains": "累计增益",
        "contacted": "触达客户占比",
        "found": "覆盖的正例占比",
        "ranking": "历次评分的排序能力（ROC-AUC，95%区间）",
        "scored_on": "评分日期",
        "auc": "按客户实际行为计算的ROC-AUC",
        "backtest": "训练时回测AUC",
        "predicted": "预测与实际",
        "actual_ratio": "实际发生人数 ÷ 预测人数",
        "calibrated": "与预测一致",
        "tolerance": "偏差10%以内：不告警",
        "none_measured": "尚无评分批次的观察期结束",
    },
}

#: Legend names of the model and the built-in baselines; other names are shown as they are.
MODEL_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "model": "model",
        "recency_rule": "baseline: recency rule",
        "rfm_score": "baseline: RFM score",
        "bg_nbd": "baseline: BG/NBD",
    },
    "zh": {
        "model": "模型",
        "recency_rule": "基线：最近购买天数规则",
        "rfm_score": "基线：RFM评分",
        "bg_nbd": "基线：BG/NBD",
    },
}


def figure_language(language: str | None) -> str:
    """Return ``language``, or :data:`DEFAULT_LANGUAGE` for None, checked before any drawing.

    Raises
    ------
    ValidationError
        If ``language`` is neither ``zh`` nor ``en``.
    """
    chosen = DEFAULT_LANGUAGE if language is None else language
    if chosen not in LANGUAGES:
        raise ValidationError(
            f"Figure language must be one of {', '.join(LANGUAGES)}, got {language!r} "
            "(settings.language, CRM_ML_LANGUAGE)."
        )
    return chosen


def _model_name(name: str, language: str) -> str:
    return MODEL_NAMES[language].get(name, name)


def _figure(width: float = 10.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def calibration_figure(
    predictions: pd.DataFrame, *, label: str, n_bins: int = 10, language: str = DEFAULT_LANGUAGE
) -> Figure:
    """Plot observed rate against mean predicted probability per bin, one line per model.

    A panel below shows the share of customers the model puts in each bin: a
    line that is close to the diagonal says little where few customers are,
    and a pile-up at 0 or 1 (many customers given certainty) shows there.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Column ``label`` (0/1) and one probability column per model (``model``
        gets the panel of shares, else the first one).
    language : {"zh", "en"}
        Language of the title, axes and legend.
    """
    words = LABELS[figure_language(language)]
    fig = _figure(6.0, 6.5)
    ax, shares = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label=words["perfect"])
    names = list(predictions.columns.drop(label))
    for name in names:
        table = calibration_table(predictions[label], predictions[name], n_bins=n_bins)
        ax.plot(
            table["mean_predicted"],
            table["observed_rate"],
            marker="o",
            label=_model_name(str(name), language),
        )
    ax.set_ylabel(words["observed_rate"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(words["calibration"])
    ax.legend(loc="upper left", fontsize="small")
    shown = "model" if "model" in names else names[0]
    _bin_shares(shares, predictions[shown], n_bins, words)
    shares.set_xlabel(words["mean_predicted"])
    return apply_fonts(fig, language)


def _bin_shares(ax: Axes, probability: pd.Series, n_bins: int, words: dict[str, str]) -> None:
    """Bars of the share of customers per probability bin, each labelled with its share."""
    counts, edges = np.histogram(probability.to_numpy(float), bins=n_bins, range=(0.0, 1.0))
    share = counts / max(counts.sum(), 1)
    bars = ax.bar(edges[:-1], share, width=1.0 / n_bins, align="edge", color="#8aa9c9")
    ax.bar_label(bars, labels=[f"{v:.0%}" if v else "" for v in share], fontsize="x-small")
    ax.set_ylim(0, min(1.0, share.max() * 1.3 + 0.02))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel(words["customer_share"])


def lift_figure(lift: pd.DataFrame, *, language: str = DEFAULT_LANGUAGE) -> Figure:
    """Plot lift by decile (left) and cumulative gains (right), one series per model.

    Both panels have a legend: which bar or line is which model, and the
    dashed line of a random order (lift 1, gains on the diagonal).

    Parameters
    ----------
    lift : pandas.DataFrame
        Stacked :func:`~crm_ml.models.metrics.lift_table` output with a ``model`` column.
    language : {"zh", "en"}
        Language of the titles, axes and legends.
    """
    words = LABELS[figure_language(language)]
    fig = _figure()
    ax_lift, ax_gain = fig.subplots(1, 2)
    models = list(dict.fromkeys(lift["model"]))
    width = 0.8 / max(len(models), 1)
    for i, name in enumerate(models):
        part, shown = lift[lift["model"] == name], _model_name(str(name), language)
        offset = (i - (len(models) - 1) / 2) * width
        ax_lift.bar(part["decile"] + offset, part["lift"], width, label=shown)
        ax_gain.plot(
            [0, *part["cumulative_share"].tolist()],
            [0, *part["gains"].tolist()],
            marker=".",
            label=shown,
        )
    _label_lift(ax_lift, words)
    _label_gains(ax_gain, words)
    return apply_fonts(fig, language)


def _label_lift(ax: Axes, words: dict[str, str]) -> None:
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label=words["random"])
    ax.set_xlabel(words["decile"])
    ax.set_ylabel(words["lift_axis"])
    ax.set_xticks(range(1, 11))
    ax.set_title(words["lift"])
    ax.legend(loc="upper right", fontsize="small")


def _label_gains(ax: Axes, words: dict[str, str]) -> None:
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label=words["random"])
    ax.set_xlabel(words["contacted"])
    ax.set_ylabel(words["found"])
    ax.set_title(words["gains"])
    ax.legend(loc="lower right", fontsize="small")


def _date_span(dates: pd.Index) -> pd.Timedelta:
    """Return the measured runs' date range, at least 90 days (a single run still gets an axis)."""
    if len(dates) == 0:
        return pd.Timedelta(days=90)
    return max(dates.max() - dates.min(), pd.Timedelta(days=90))


def outcomes_figure(checks: pd.DataFrame, *, language: str = DEFAULT_LANGUAGE) -> Figure:
    """Plot how each measured scoring run turned out, one series per model.

    Left: the run's ROC-AUC on what its customers then did, with its 95 % interval,
    next to the version's backtest AUC (open markers). Right: customers who did
    over customers the probabilities predicted (1 = as predicted).

    Parameters
    ----------
    checks : pandas.DataFrame
        :func:`crm_ml.models.monitoring.check_models` output (index ``model``, ``as_of``).
    language : {"zh", "en"}
        Language of the titles, axes and legends.
    """
    from crm_ml.models.monitoring import CALIBRATION_TOLERANCE  # it reads stores; plots do not

    words = LABELS[figure_language(language)]
    fig = _figure(height=5.0)
    ax_auc, ax_ratio = fig.subplots(1, 2, sharex=True)
    measured = checks[checks["status"] == "measured"]
    models = list(dict.fromkeys(measured.index.get_level_values("model")))
    span = _date_span(measured.index.get_level_values("as_of"))
    for i, name in enumerate(models):
        runs = measured.xs(name, level="model")
        # Side by side, not on top of each other: models scored on the same day would hide
        # each other's interval. The shift is a small fraction of the axis.
        shift = (i - (len(models) - 1) / 2) * span / 60
        dates = pd.DatetimeIndex(runs.index) + shift
        errors = [runs["roc_auc"] - runs["auc_low"], runs["auc_high"] - runs["roc_auc"]]
        shown = ax_auc.errorbar(
            dates, runs["roc_auc"], yerr=errors, marker="o", capsize=3, label=str(name)
        )
        ax_auc.scatter(
            dates,
            runs["backtest_auc"],
            marker="D",
            facecolors="none",
            edgecolors=shown[0].get_color(),
            label=f"{name}: {words['backtest']}",
        )
        ax_ratio.plot(dates, runs["actual"] / runs["expected"], marker="o", label=str(name))
    ax_ratio.axhline(1.0, color="grey", linestyle="--", linewidth=1, label=words["calibrated"])
    band = (1 - CALIBRATION_TOLERANCE, 1 + CALIBRATION_TOLERANCE)
    ax_ratio.axhspan(*band, color="grey", alpha=0.12, label=words["tolerance"])
    ax_auc.set(title=words["ranking"], xlabel=words["scored_on"], ylabel=words["auc"])
    ax_ratio.set(title=words["predicted"], xlabel=words["scored_on"], ylabel=words["actual_ratio"])
    if measured.empty:
        ax_auc.text(0.5, 0.5, words["none_measured"], ha="center", transform=ax_auc.transAxes)
    else:
        scored = measured.index.get_level_values("as_of").unique().sort_values()
        ax_auc.set_xlim(scored.min() - span / 8, scored.max() + span / 8)
        if len(scored) <= 8:  # a tick on each scoring date; more would collide
            ax_auc.set_xticks(scored)
    for ax in (ax_auc, ax_ratio):
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
        ax.tick_params(axis="x", labelrotation=30)
        if ax.get_legend_handles_labels()[0]:
            # Below the panel: with one or two runs, any spot inside covers a point.
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize="small")
    return apply_fonts(fig, language)
