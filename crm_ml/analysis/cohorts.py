"""Monthly acquisition cohorts and their customer and revenue retention.

A customer's *cohort* is the calendar month of their first purchase (in the
business's time zone). Month ``k`` of a cohort is the ``k``-th calendar month
after it (month 0 is the acquisition month itself):

- *customer retention* at ``k`` = customers of the cohort who bought in month
  ``k`` / customers in the cohort (1.0 at ``k = 0``);
- *revenue retention* at ``k`` = the cohort's revenue in month ``k`` / its
  revenue in month 0 (it can exceed 1 when survivors spend more).

Only complete months are shown: the month containing ``as_of`` is partly in
the future and would look like a sudden drop, so it is left out, and cells a
cohort has not yet reached are missing (NaN), never zero.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crm_ml.analysis._common import Instant, as_instant, check_tz, local_instant, to_local
from crm_ml.analysis._plot import draw_heatmap, finish, label, new_figure
from crm_ml.analysis._read import read_orders
from crm_ml.errors import ConfigError
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

RETENTION_METRICS = ("customer_retention", "revenue_retention", "customers", "revenue")

_TABLE_COLUMNS = {
    "cohort": "period[M]",
    "months_since": "int64",
    "customers": "int64",
    "revenue": "float64",
    "cohort_customers": "int64",
    "customer_retention": "float64",
    "revenue_retention": "float64",
}


def _month_ordinal(values: pd.Series) -> pd.Series:
    """Months since 1970-01 (the ordinal of a monthly Period)."""
    return (values.dt.year - 1970) * 12 + values.dt.month - 1


def _month_period(ordinals: pd.Series) -> pd.Series:
    """Turn month ordinals back into monthly Periods."""
    parts = pd.DataFrame({"year": ordinals // 12 + 1970, "month": ordinals % 12 + 1, "day": 1})
    return pd.to_datetime(parts).dt.to_period("M")


def _activity(orders: pd.DataFrame, tz: str, last_month: int) -> pd.DataFrame:
    """Count customers and sum revenue per (cohort, month) ordinal pair, up to ``last_month``."""
    frame = pd.DataFrame(
        {
            "customer_id": orders["customer_id"],
            "month": _month_ordinal(to_local(orders["ordered_at"], tz)),
            "revenue": orders["revenue"],
        }
    )
    frame["cohort"] = frame.groupby("customer_id")["month"].transform("min")
    frame = frame[frame["month"] <= last_month]
    return frame.groupby(["cohort", "month"], as_index=False).agg(
        customers=("customer_id", "nunique"), revenue=("revenue", "sum")
    )


def _full_grid(cohorts: np.ndarray, last_month: int) -> pd.DataFrame:
    """Every (cohort, month) pair from acquisition to ``last_month``."""
    grid = pd.DataFrame({"cohort": cohorts})
    grid["month"] = [list(range(c, last_month + 1)) for c in cohorts]
    return grid.explode("month").astype({"cohort": "int64", "month": "int64"})


def cohort_table(store: Store, as_of: Instant, *, tz: str = "UTC") -> pd.DataFrame:
    """Count customers and revenue of each monthly acquisition cohort, month by month.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        Only orders placed before it are read; only months complete by then are shown.
    tz : str
        IANA time zone whose calendar months define cohorts (e.g. ``"Asia/Shanghai"``).

    Returns
    -------
    pandas.DataFrame
        One row per cohort and month reached, sorted by ``cohort, months_since``.
        Columns ``cohort`` (monthly Period), ``months_since`` (int64),
        ``customers`` (buyers of the cohort in that month), ``revenue``
        (their net revenue), ``cohort_customers``, ``customer_retention`` and
        ``revenue_retention`` (NaN when month-0 revenue is zero).
    """
    as_of = as_instant(as_of)
    check_tz(tz)
    last_month = int(_month_ordinal(pd.Series([local_instant(as_of, tz)])).iloc[0]) - 1
    activity = _activity(read_orders(store, as_of), tz, last_month)
    if activity.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _TABLE_COLUMNS.items()})
    grid = _full_grid(activity["cohort"].unique(), last_month)
    table = grid.merge(activity, on=["cohort", "month"], how="left").fillna(
        {"customers": 0, "revenue": 0.0}
    )
    table = table.sort_values(["cohort", "month"], ignore_index=True)
    first = table.groupby("cohort")[["customers", "revenue"]].transform("first")
    table["cohort_customers"] = first["customers"]
    table["customer_retention"] = table["customers"] / first["customers"]
    table["revenue_retention"] = table["revenue"] / first["revenue"].where(first["revenue"] > 0)
    table["months_since"] = table["month"] - table["cohort"]
    table["cohort"] = _month_period(table["cohort"])
    log.info("Cohort table: %d cohorts up to %s", table["cohort"].nunique(), as_of)
    return table[list(_TABLE_COLUMNS)].astype(_TABLE_COLUMNS)


def retention_matrix(table: pd.DataFrame, *, metric: str = "customer_retention") -> pd.DataFrame:
    """Pivot a :func:`cohort_table` into a cohort × months-since-acquisition matrix.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`cohort_table`.
    metric : str
        ``customer_retention``, ``revenue_retention``, ``customers`` or ``revenue``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``cohort`` (monthly Period); one column per ``months_since``
        (0, 1, …); NaN where a cohort has not reached that month yet.

    Raises
    ------
    ConfigError
        If ``metric`` is not one of the above.
    """
    if metric not in RETENTION_METRICS:
        raise ConfigError(f"metric={metric!r} is not one of {', '.join(RETENTION_METRICS)}.")
    matrix = table.pivot(index="cohort", columns="months_since", values=metric)
    matrix.columns.name = "months_since"
    return matrix.astype("float64")


def plot_retention_heatmap(
    matrix: pd.DataFrame, *, metric: str = "customer_retention", lang: str = "en"
) -> Figure:
    """Heatmap of a :func:`retention_matrix`, cohorts down, months since acquisition across.

    Parameters
    ----------
    matrix : pandas.DataFrame
        A retention matrix (ratios are shown as percentages).
    metric : str
        The metric it holds, for the title.
    lang : str
        ``"en"`` or ``"zh"`` labels.
    """
    fig, ax = new_figure(max(6.0, 0.5 * matrix.shape[1] + 3), max(4.0, 0.35 * len(matrix) + 2))
    ratio = metric.endswith("retention")
    # Month 0 is 100 % by definition: scaled to it, every later month reads near white.
    later = matrix.drop(columns=matrix.columns[:1]).to_numpy(dtype="float64")
    vmax = float(np.nanmax(later)) if ratio and np.isfinite(later).any() else None
    draw_heatmap(ax, matrix, fmt=".0%" if ratio else ",.0f", vmax=vmax)
    ax.set_xlabel(label("months_since", lang))
    ax.set_ylabel(label("cohort", lang))
    ax.set_title(label(metric, lang) if ratio else metric)
    return finish(fig, lang)


def plot_retention_curves(
    matrix: pd.DataFrame, *, metric: str = "customer_retention", lang: str = "en"
) -> Figure:
    """Retention curves: one thin line per cohort and their unweighted average in bold.

    Parameters
    ----------
    matrix : pandas.DataFrame
        A :func:`retention_matrix`.
    metric : str
        The metric it holds, for the axis label.
    lang : str
        ``"en"`` or ``"zh"`` labels.
    """
    fig, ax = new_figure()
    colors = [f"C{i % 10}" for i in range(len(matrix))]
    for (cohort, row), color in zip(matrix.iterrows(), colors, strict=True):
        ax.plot(row.index, row.to_numpy(), lw=0.8, alpha=0.6, color=color, label=str(cohort))
    average = matrix.mean().to_numpy()
    ax.plot(matrix.columns, average, lw=2.5, color="black", label=label("average", lang))
    ax.set_xlabel(label("months_since", lang))
    ax.set_ylabel(label(metric, lang) if metric.endswith("retention") else metric)
    if metric.endswith("retention"):
        ax.yaxis.set_major_formatter("{x:.0%}")
    if len(matrix) <= 12:
        ax.legend(fontsize=7, ncols=2)
    return finish(fig, lang)
