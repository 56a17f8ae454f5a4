"""New, active, churned and reactivated customers per period, and the churn-rate trend.

Definitions (non-contractual retail: nobody cancels, customers just stop buying),
with ``N = churn_days``:

- a customer is *active* at an instant ``t`` if they bought in ``[t - N, t)``;
- they *churn* at ``x + N`` when a purchase at ``x`` is followed by none for
  ``N`` days — the churn is known, and counted, only once ``x + N < as_of``;
- a purchase at least ``N`` days after the previous one *reactivates*;
- the first purchase ever makes a customer *new*.

Per period ``[start, end)`` (calendar periods in the business's time zone):
``active_start`` is the active base at ``start``; ``new``, ``reactivated`` and
``churned`` count events inside the period, so that
``active_end = active_start + new + reactivated - churned`` always holds (a
customer who lapses twice in one period — only possible when ``N`` is shorter
than the period — counts twice); ``purchasers`` counts distinct buyers;
``churn_rate = churned / active_start``. A period that ends no later than
``N`` days after the first purchase ever cannot hold a churn (nobody has gone
``N`` days without buying yet): its ``churn_rate`` is NaN, not 0, and
:func:`churn_rate_trend` leaves it out of the pooled rate.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crm_ml.analysis._common import (
    Instant,
    as_instant,
    check_tz,
    local_instant,
    period_freq,
    require_columns,
    require_positive,
    to_local,
)
from crm_ml.analysis._plot import finish, label, new_figure
from crm_ml.analysis._read import read_orders
from crm_ml.errors import ConfigError
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

LIFECYCLE_COLUMNS = (
    "period_start",
    "period_end",
    "complete",
    "active_start",
    "new",
    "reactivated",
    "churned",
    "active_end",
    "purchasers",
    "churn_rate",
)


def lifecycle_events(orders: pd.DataFrame, as_of: pd.Timestamp, *, churn_days: int) -> pd.DataFrame:
    """Turn purchases into ``new``, ``reactivated`` and ``churned`` events.

    Parameters
    ----------
    orders : pandas.DataFrame
        Columns ``customer_id`` and ``ordered_at``, all before ``as_of``.
    as_of : pandas.Timestamp
        Churn events at or after it are not known yet and are dropped.
    churn_days : int
        Days without a purchase after which a customer has churned.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id``, ``at`` (event time) and ``event``, sorted by
        ``at``, ``customer_id``, ``event``.
    """
    lapse = pd.Timedelta(days=churn_days)
    buys = orders[["customer_id", "ordered_at"]].sort_values(["customer_id", "ordered_at"])
    by_customer = buys.groupby("customer_id")["ordered_at"]
    gap_before = buys["ordered_at"] - by_customer.shift(1)
    gap_after = by_customer.shift(-1) - buys["ordered_at"]
    new = buys[gap_before.isna()].assign(event="new")
    back = buys[gap_before >= lapse].assign(event="reactivated")
    lapsed = buys[gap_after.isna() | (gap_after >= lapse)]
    churned = lapsed.assign(ordered_at=lapsed["ordered_at"] + lapse, event="churned")
    churned = churned[churned["ordered_at"] < as_of]
    events = pd.concat([new, back, churned], ignore_index=True).rename(columns={"ordered_at": "at"})
    # At one instant a lapse sorts before the purchase that ends it ("churned" < "reactivated").
    return events.sort_values(["at", "customer_id", "event"], ignore_index=True)


def _period_index(
    first: pd.Timestamp, as_of: pd.Timestamp, pfreq: str, include_partial: bool
) -> pd.PeriodIndex:
    """Periods from the one holding ``first`` to the last complete one (or the partial one)."""
    last = pd.Period(as_of, pfreq)
    if not include_partial or last.start_time == as_of:
        last = last - 1
    return pd.period_range(pd.Period(first, pfreq), last, freq=pfreq, name="period")


def _count_before(times: pd.Series, bounds: np.ndarray) -> np.ndarray:
    """How many of ``times`` fall strictly before each bound."""
    ordered = np.sort(times.to_numpy(dtype="datetime64[us]"))
    return np.searchsorted(ordered, bounds, side="left")


def _tally(events: pd.DataFrame, buys: pd.DataFrame, periods: pd.PeriodIndex) -> pd.DataFrame:
    """Count events and distinct buyers per period."""
    starts = periods.start_time.as_unit("us").to_numpy()
    entries = events.loc[events["event"] != "churned", "at"]
    exits = events.loc[events["event"] == "churned", "at"]
    frame = pd.DataFrame(index=periods)
    frame["active_start"] = _count_before(entries, starts) - _count_before(exits, starts)
    in_period = events.assign(period=events["at"].dt.to_period(periods.freqstr))
    counts = pd.crosstab(in_period["period"], in_period["event"]).reindex(
        index=periods, columns=["new", "reactivated", "churned"], fill_value=0
    )
    frame[counts.columns] = counts
    buyers = buys.assign(period=buys["ordered_at"].dt.to_period(periods.freqstr))
    frame["purchasers"] = (
        buyers.groupby("period")["customer_id"].nunique().reindex(periods, fill_value=0)
    )
    return frame.astype("int64")


def customer_lifecycle(
    store: Store,
    as_of: Instant,
    *,
    freq: str = "ME",
    churn_days: int = 90,
    start: Instant | None = None,
    tz: str = "UTC",
    include_partial: bool = False,
) -> pd.DataFrame:
    """Count new, active, churned and reactivated customers per calendar period.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        Only orders before it are read; churn is counted only once it is known by then.
    freq : str
        Period length: ``"ME"`` (month), ``"QE"``, ``"YE"``, ``"W-SUN"``…
    churn_days : int
        A customer who has not bought for this many days has churned.
    start : datetime or str, optional
        First period to show (the one containing it); by default the first purchase's.
    tz : str
        IANA time zone whose calendar defines the periods.
    include_partial : bool
        Also show the period containing ``as_of``, which is only partly observed.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``period`` (Period); columns ``period_start``, ``period_end``
        (local time, end exclusive), ``complete``, ``active_start``, ``new``,
        ``reactivated``, ``churned``, ``active_end``, ``purchasers`` (int64) and
        ``churn_rate`` (NaN when ``active_start`` is 0, or when no churn could
        have happened yet in the period). See the module notes.
    """
    as_of, pfreq = as_instant(as_of), period_freq(freq)
    require_positive(churn_days, name="churn_days")
    local_as_of = local_instant(as_of, check_tz(tz))
    buys = read_orders(store, as_of)
    buys["ordered_at"] = to_local(buys["ordered_at"], tz)
    if start is not None:
        first = local_instant(as_instant(start, name="start"), tz)
    elif buys.empty:
        raise ConfigError(f"No orders before {as_of}; pass start= to show empty periods.")
    else:
        first = buys["ordered_at"].min()
    periods = _period_index(first, local_as_of, pfreq, include_partial)
    events = lifecycle_events(buys, local_as_of, churn_days=churn_days)
    frame = _tally(events, buys, periods)
    frame.insert(0, "period_start", periods.start_time.as_unit("us"))
    frame.insert(1, "period_end", (periods + 1).start_time.as_unit("us"))
    frame.insert(2, "complete", frame["period_end"] <= local_as_of)
    frame.insert(
        7,
        "active_end",
        frame["active_start"] + frame["new"] + frame["reactivated"] - frame["churned"],
    )
    frame["churn_rate"] = frame["churned"] / frame["active_start"].where(frame["active_start"] > 0)
    if not buys.empty:
        first_churn = buys["ordered_at"].min() + pd.Timedelta(days=churn_days)
        frame.loc[frame["period_end"] <= first_churn, "churn_rate"] = np.nan
    return frame[list(LIFECYCLE_COLUMNS)]


def churn_rate_trend(lifecycle: pd.DataFrame, *, window: int = 3) -> pd.DataFrame:
    """Churn rate per period and pooled over a trailing window of periods.

    Parameters
    ----------
    lifecycle : pandas.DataFrame
        The output of :func:`customer_lifecycle`.
    window : int
        Periods pooled for the smoothed rate (sum of churned / sum of ``active_start``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``period``; columns ``active_start``, ``churned``,
        ``churn_rate`` (as in ``lifecycle``) and ``churn_rate_rolling`` (NaN
        until ``window`` periods in which churn could happen exist);
        ``attrs["window"]`` holds ``window``.
    """
    require_columns(
        lifecycle, ("active_start", "churned", "churn_rate"), what="The lifecycle frame"
    )
    require_positive(window, name="window")
    frame = lifecycle[["active_start", "churned", "churn_rate"]].copy()
    # A rate left undefined despite an active base marks a period too early for any
    # churn: its zero churned would pull the pooled rate down, so it is not pooled.
    too_early = frame["churn_rate"].isna() & (frame["active_start"] > 0)
    pooled = frame[["active_start", "churned"]].mask(too_early).rolling(window).sum()
    frame["churn_rate_rolling"] = pooled["churned"] / pooled["active_start"].where(
        pooled["active_start"] > 0
    )
    frame.attrs["window"] = window  # for the figure's legend
    return frame


def plot_churn_trend(trend: pd.DataFrame, *, lang: str = "en") -> Figure:
    """Line chart of a :func:`churn_rate_trend` (or lifecycle) frame's churn rate.

    Parameters
    ----------
    trend : pandas.DataFrame
        Indexed by ``period`` with ``churn_rate`` (and optionally ``churn_rate_rolling``).
    lang : str
        ``"en"`` or ``"zh"`` labels.
    """
    require_columns(trend, ("churn_rate",), what="The churn trend frame")
    fig, ax = new_figure()
    x = np.arange(len(trend))
    ax.plot(x, trend["churn_rate"].to_numpy(), marker="o", label=label("churn_rate_period", lang))
    if "churn_rate_rolling" in trend:
        pooled = label("churn_rate_rolling", lang).format(window=trend.attrs.get("window", 3))
        ax.plot(
            x, trend["churn_rate_rolling"].to_numpy(), lw=2.5, color="black", alpha=0.7,
            label=pooled,
        )  # fmt: skip
    ax.set_ylim(bottom=0)  # a rate from 18 % to 27 % should not look like 0 to 100
    ax.legend(loc="lower left", fontsize="small")
    step = max(1, len(trend) // 12)
    ax.set_xticks(x[::step], [str(p) for p in trend.index[::step]], rotation=45, ha="right")
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.set_xlabel(label("period", lang))
    ax.set_ylabel(label("churn_rate", lang))
    ax.set_title(label("churn_rate", lang))
    return finish(fig, lang)
