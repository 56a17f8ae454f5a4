"""Backtest figures: a calibration (reliability) plot and a lift / gains chart.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg
canvas), never through ``pyplot``: no global state, no display needed, and
notebooks show them as they show any Figure.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from crm_ml.models.metrics import calibration_table


def _figure(width: float = 10.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def calibration_figure(predictions: pd.DataFrame, *, label: str, n_bins: int = 10) -> Figure:
    """Plot observed rate against mean predicted probability per bin, one line per model.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Column ``label`` (0/1) and one probability column per model.
    """
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name in predictions.columns.drop(label):
        table = calibration_table(predictions[label], predictions[name], n_bins=n_bins)
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=name)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Calibration on the test snapshot")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def lift_figure(lift: pd.DataFrame) -> Figure:
    """Plot lift by decile (left) and cumulative gains (right), one series per model.

    Parameters
    ----------
    lift : pandas.DataFrame
        Stacked :func:`~crm_ml.models.metrics.lift_table` output with a ``model`` column.
    """
    fig = _figure()
    ax_lift, ax_gain = fig.subplots(1, 2)
    models = list(dict.fromkeys(lift["model"]))
    width = 0.8 / max(len(models), 1)
    for i, name in enumerate(models):
        part = lift[lift["model"] == name]
        ax_lift.bar(
            part["decile"] + (i - (len(models) - 1) / 2) * width, part["lift"], width, label=name
        )
        ax_gain.plot(
            [0, *part["cumulative_share"].tolist()],
            [0, *part["gains"].tolist()],
            marker=".",
            label=name,
        )
    ax_lift.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax_lift.set_xlabel("decile (1 = highest score)")
    ax_lift.set_ylabel("lift")
    ax_lift.set_xticks(range(1, 11))
    ax_lift.set_title("Lift by decile")
    ax_gain.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax_gain.set_xlabel("share of customers contacted")
    ax_gain.set_ylabel("share of positives found")
    ax_gain.set_title("Cumulative gains")
    ax_gain.legend(loc="lower right", fontsize="small")
    return fig
