"""Time in the synthetic store: days since the start, seasonality, and Poisson sampling.

Internally time is a float number of days since ``start`` (day ``k`` covers
``[k, k + 1)``). Shopping is seasonal: the intensity of every customer's
purchase process is multiplied by a daily factor ``season[k]`` (Spring
Festival, Women's Day, 618, Double 11 in ``zh_CN``; Black Friday and Christmas
in ``en``), normalised to average 1. Events of a Poisson process with intensity
``rate * season(t)`` are drawn exactly by inverting the cumulative season.

Timestamps are written as naive UTC. Each day's activity is spread over local
08:00–24:00, which in UTC stays within the same calendar date for both locales,
so a date boundary means the same in local time and in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: Days after the data end that the season is known for (truth horizons look ahead).
PAD_DAYS = 130

_SPRING_FESTIVAL = {
    2015: "02-19",
    2016: "02-08",
    2017: "01-28",
    2018: "02-16",
    2019: "02-05",
    2020: "01-25",
    2021: "02-12",
    2022: "02-01",
    2023: "01-22",
    2024: "02-10",
    2025: "01-29",
    2026: "02-17",
    2027: "02-06",
    2028: "01-26",
    2029: "02-13",
    2030: "02-03",
    2031: "01-23",
    2032: "02-11",
    2033: "01-31",
    2034: "02-19",
}

#: UTC offset (hours) of the business day in each locale: Asia/Shanghai, Europe/London.
UTC_OFFSET = {"zh_CN": 8, "en": 0}


def as_day(when: object) -> np.datetime64:
    """Return the day of ``when`` (a date, timestamp or ISO string) as ``datetime64[D]``."""
    return pd.Timestamp(when).to_datetime64().astype("datetime64[D]")  # type: ignore[arg-type]


def _spring_festival_factor(dates: pd.DatetimeIndex) -> F64:
    factor = np.ones(len(dates))
    for year in np.unique(dates.year):
        day = pd.Timestamp(f"{year}-{_SPRING_FESTIVAL.get(int(year), '02-01')}")
        offset = (dates - day).days.to_numpy()
        factor[(offset >= -21) & (offset < 0)] = 1.5  # 年货: stocking up before the festival
        factor[(offset >= 0) & (offset < 7)] = 0.5  # holiday week: shops shut, couriers stop
    return factor


def _zh_factor(dates: pd.DatetimeIndex) -> F64:
    month, day = dates.month.to_numpy(), dates.day.to_numpy()
    factor = _spring_festival_factor(dates)
    factor[(month == 3) & (day >= 6) & (day <= 8)] *= 1.8  # 3-8 妇女节 / 女神节
    factor[(month == 6) & (day < 18)] *= 1.3  # 618 warm-up
    factor[(month == 6) & (day == 18)] *= 3.0
    factor[((month == 10) & (day == 31)) | ((month == 11) & (day < 11))] *= 1.4  # 双11 pre-sale
    factor[(month == 11) & (day == 11)] *= 4.0
    factor[(month == 12) & (day == 12)] *= 1.8  # 双12
    return factor


def _en_factor(dates: pd.DatetimeIndex) -> F64:
    month, day = dates.month.to_numpy(), dates.day.to_numpy()
    factor = np.ones(len(dates))
    weekday = dates.day_of_week.to_numpy()
    black_friday = (month == 11) & (weekday == 4) & (day >= 23) & (day <= 29)
    factor[black_friday] *= 3.5
    factor[(month == 12) & (day < 24)] *= 1.4  # Christmas shopping
    factor[(month == 12) & (day == 26)] *= 2.0  # Boxing Day
    factor[(month == 1) & (day < 15)] *= 1.2  # January sales
    return factor


def season_factors(first_day: np.datetime64, n_days: int, locale: str) -> F64:
    """Daily demand multipliers from ``first_day`` for ``n_days``, averaging 1.

    Weekends are busier; festival peaks follow ``locale``.
    """
    dates = pd.date_range(pd.Timestamp(first_day), periods=n_days, freq="D")
    factor = _zh_factor(dates) if locale == "zh_CN" else _en_factor(dates)
    factor = factor * np.where(dates.day_of_week.to_numpy() >= 5, 1.15, 0.94)
    return factor / factor.mean()


@dataclass(frozen=True)
class Timeline:
    """Days of the synthetic period and the seasonal intensity over them.

    Attributes
    ----------
    start : numpy.datetime64
        First day (UTC midnight).
    n_days : int
        Days with data: day ``n_days`` (exclusive) is the day after ``end``.
    season : numpy.ndarray
        Daily intensity multiplier, ``n_days + PAD_DAYS`` long.
    cum : numpy.ndarray
        Integral of ``season`` at day boundaries, one longer than ``season``.
    utc_offset : int
        Hours the business's local time is ahead of UTC.
    """

    start: np.datetime64
    n_days: int
    season: F64
    cum: F64
    utc_offset: int

    @classmethod
    def build(cls, start: object, end: object, locale: str) -> Timeline:
        """Timeline from ``start`` to ``end`` inclusive (dates; times of day are dropped)."""
        first, last = as_day(start), as_day(end)
        n_days = int((last - first).astype(np.int64)) + 1
        season = season_factors(first, n_days + PAD_DAYS, locale)
        cum = np.concatenate([[0.0], np.cumsum(season)])
        return cls(first, n_days, season, cum, UTC_OFFSET.get(locale, 0))

    @property
    def horizon(self) -> float:
        """Last day the season is known (exclusive), in days."""
        return float(self.season.size)

    def mass(self, t: F64) -> F64:
        """Integral of the season from day 0 to ``t``."""
        t = np.clip(t, 0.0, self.horizon - 1e-9)
        k = np.floor(t).astype(np.int64)
        return self.cum[k] + self.season[k] * (t - k)

    def inverse(self, y: F64) -> F64:
        """Return the time ``t`` at which :meth:`mass` reaches ``y``."""
        k = np.searchsorted(self.cum, y, side="right") - 1
        k = np.clip(k, 0, self.season.size - 1)
        return k + (y - self.cum[k]) / self.season[k]

    def poisson_times(
        self, rate: F64, a: F64, b: F64, rng: np.random.Generator
    ) -> tuple[NDArray[np.int64], F64]:
        """Events of Poisson processes with intensity ``rate[i] * season(t)`` on ``[a[i], b[i])``.

        Returns
        -------
        tuple of numpy.ndarray
            The process index of each event and its time (unsorted).
        """
        lo, hi = self.mass(a), self.mass(np.maximum(a, b))
        counts = rng.poisson(rate * (hi - lo))
        idx = np.repeat(np.arange(rate.size), counts)
        y = lo[idx] + rng.random(idx.size) * (hi - lo)[idx]
        return idx, np.minimum(self.inverse(y), np.maximum(a, b)[idx] - 1e-9)

    def day_of(self, when: object) -> float:
        """Days from ``start`` to the date ``when`` (midnight)."""
        return float((as_day(when) - self.start).astype(np.int64))

    def timestamps(self, t: F64) -> NDArray[np.datetime64]:
        """Naive-UTC timestamps (seconds) of times ``t``.

        The fraction of day ``k`` maps onto local 08:00–24:00, keeping order within a day.
        """
        day = np.floor(t)
        midnight_utc = day * 86_400.0 - self.utc_offset * 3_600.0
        seconds = np.round(midnight_utc + (8.0 + (t - day) * 16.0) * 3_600.0)
        seconds = np.minimum(seconds, midnight_utc + 24 * 3_600.0 - 1.0)  # stay on the same day
        base = self.start.astype("datetime64[s]")
        return (base + seconds.astype(np.int64).astype("timedelta64[s]")).astype("datetime64[us]")

    def midnights(self, days: F64) -> NDArray[np.datetime64]:
        """UTC midnights of whole days ``days``."""
        return (self.start + days.astype(np.int64).astype("timedelta64[D]")).astype(
            "datetime64[us]"
        )
