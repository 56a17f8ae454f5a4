"""Building blocks of the generator, on tiny hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.demo import _text
from crm_ml.demo.names import name_pools
from crm_ml.demo.profiles import variant_name
from crm_ml.demo.purchases import Life, Purchases, Windows, death_days, ranges
from crm_ml.demo.timeline import Timeline
from crm_ml.errors import ConfigError


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    return Timeline.build("2024-01-01", "2024-12-31", "zh_CN")


def test_timeline_spans_the_days_inclusive(timeline):
    assert timeline.n_days == 366
    assert timeline.day_of("2024-03-08") == 67.0


def test_season_averages_one_with_festival_peaks(timeline):
    season = timeline.season
    assert season.mean() == pytest.approx(1.0)
    double11, ordinary = timeline.day_of("2024-11-11"), timeline.day_of("2024-04-17")
    assert season[int(double11)] > 3 * season[int(ordinary)]
    festival = int(timeline.day_of("2024-02-11"))  # Spring Festival 2024-02-10: shops shut
    assert season[festival] < season[int(ordinary)]


def test_mass_and_inverse_round_trip(timeline):
    t = np.array([0.0, 0.5, 10.25, 200.75, 365.9])
    assert timeline.inverse(timeline.mass(t)) == pytest.approx(t)


def test_poisson_times_fall_in_their_intervals_at_the_right_rate(timeline):
    rng = np.random.default_rng(0)
    a, b = np.array([10.0, 100.0]), np.array([20.0, 300.0])
    who, day = timeline.poisson_times(np.array([50.0, 0.0]), a, b, rng)
    assert (who == 0).all()
    assert ((day >= 10) & (day < 20)).all()
    expected = 50.0 * (timeline.mass(b[:1]) - timeline.mass(a[:1]))[0]
    assert abs(day.size - expected) < 4 * np.sqrt(expected)


def test_timestamps_are_local_business_hours_in_utc(timeline):
    stamps = pd.Series(timeline.timestamps(np.array([0.0, 0.999, 31.5])))
    assert list(stamps.dt.strftime("%Y-%m-%d %H:%M")) == [
        "2024-01-01 00:00",
        "2024-01-01 15:59",
        "2024-02-01 08:00",
    ]


def test_a_person_leaves_after_their_nth_purchase_or_when_they_drift_away():
    purchases = Purchases(np.array([0, 0, 0, 1]), np.array([1.0, 2.0, 3.0, 5.0]))
    life = Life(
        np.array([2, 3]),
        np.zeros(0, np.int64),
        np.zeros(0),
        np.zeros(0, bool),
        np.full(2, np.inf),
        np.array([np.inf, 4.0]),
    )
    assert death_days(purchases, life, 2).tolist() == [2.0, 4.0]


def test_ranges_flatten_index_spans():
    owner, index = ranges(np.array([2, 5, 7]), np.array([4, 5, 8]))
    assert owner.tolist() == [0, 0, 2]
    assert index.tolist() == [2, 3, 7]


def test_windows_concatenate_and_select():
    one = Windows(np.array([0]), np.array([1.0]), np.array([2.0]), np.array([2.0]), np.array([1.0]))
    both = one + Windows.empty() + one
    assert both.select(np.array([True, False])).person.tolist() == [0]
    assert both.factor.tolist() == [2.0, 2.0]


def test_text_helpers():
    assert _text.ids("C", 41, 2, 5).tolist() == ["C00041", "C00042"]
    picked = _text.pick(["a", "b"], np.array([1, -1, 0]))
    assert picked.tolist()[0] == "b" and pd.isna(picked[1]) and picked[2] == "a"
    assert _text.join(pd.Series(["x", "y"]), "-", pd.Series(["1", "2"])).tolist() == ["x-1", "y-2"]


@pytest.mark.parametrize(
    ("name", "gender", "how", "chinese", "expected"),
    [
        ("张伟", 1, 0, True, "張偉"),
        ("张伟", 1, 1, True, "张 伟"),
        ("李芳", 0, 2, True, "李女士"),
        ("Matthew Hughes", 1, 0, False, "Matt Hughes"),
        ("Matthew Hughes", 1, 1, False, "M. Hughes"),
    ],
)
def test_duplicate_records_spell_names_differently(name, gender, how, chinese, expected):
    assert variant_name(name, gender, how, chinese) == expected


def test_unknown_locale_is_refused():
    with pytest.raises(ConfigError, match="expected one of zh_CN, en"):
        name_pools("de")
