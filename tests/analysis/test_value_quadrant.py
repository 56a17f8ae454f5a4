from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_rows import order

from crm_ml.analysis import (
    concentration_summary,
    customer_value,
    gini,
    lorenz_curve,
    top_share,
    value_cut_points,
    value_quadrant,
    value_quadrant_summary,
)
from crm_ml.errors import ConfigError, ValidationError


def values(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "orders", "aov"]).set_index("customer_id")
    frame["revenue"] = frame["orders"] * frame["aov"]
    return frame


def test_customer_value_window_is_half_open(store, insert):
    insert(
        "orders",
        [
            order("o1", "c1", "2023-07-01 00:00", 100.0),  # as_of - 366 days: outside
            order("o2", "c1", "2023-07-02 00:00", 40.0),  # as_of - 365 days: inside
            order("o3", "c1", "2024-06-30 23:59:59", 60.0),
            order("o4", "c2", "2024-03-01", 10.0),
            order("o5", "c2", "2024-07-01 00:00", 500.0),  # at as_of: outside
        ],
    )
    value = customer_value(store, "2024-07-01", window_days=365)

    assert value.index.tolist() == ["c1", "c2"]
    assert value["orders"].tolist() == [2, 1]
    assert value["revenue"].tolist() == [100.0, 10.0]
    assert value["aov"].tolist() == [50.0, 10.0]


def test_quadrants_split_at_medians():
    rated = value_quadrant(
        values([("c1", 1, 100.0), ("c2", 3, 50.0), ("c3", 5, 200.0), ("c4", 2, 20.0)])
    )

    assert rated.attrs["cuts"] == {"aov": [75.0], "frequency": [2.5]}
    assert rated["quadrant"].tolist() == [
        "low_freq_high_aov",
        "high_freq_low_aov",
        "high_freq_high_aov",
        "low_freq_low_aov",
    ]


def test_a_value_on_the_cut_is_low():
    rated = value_quadrant(
        values([("c1", 1, 10.0), ("c2", 2, 30.0)]), aov_cuts=[30.0], frequency_cuts=[1]
    )

    assert rated["quadrant"].tolist() == ["low_freq_low_aov", "high_freq_low_aov"]


def test_grades_a_to_e_with_explicit_cuts():
    rated = value_quadrant(
        values(
            [
                ("c3", 5, 200.0),  # top, top -> A
                ("c5", 2, 160.0),  # top, middle -> B
                ("c6", 4, 100.0),  # middle, top -> B
                ("c7", 2, 60.0),  # middle, middle -> C
                ("c1", 1, 100.0),  # middle, bottom -> D
                ("c8", 1, 10.0),  # bottom, bottom -> E
            ]
        ),
        scheme="grade",
        aov_cuts=[50.0, 150.0],
        frequency_cuts=[1, 3],
    )

    assert rated["value_grade"].tolist() == ["A", "B", "B", "C", "D", "E"]
    assert rated["value_grade"].cat.ordered


def test_default_grade_cuts_are_terciles():
    cuts = value_cut_points(values([(f"c{i}", i, 10.0 * i) for i in range(1, 8)]), scheme="grade")

    assert cuts == {"aov": [30.0, 50.0], "frequency": [3.0, 5.0]}


def test_quadrant_summary_lists_every_quadrant():
    rated = value_quadrant(values([("c1", 1, 100.0), ("c2", 3, 50.0), ("c3", 5, 200.0)]))
    summary = value_quadrant_summary(rated)

    assert summary.index.tolist() == [
        "high_freq_high_aov",
        "high_freq_low_aov",
        "low_freq_high_aov",
        "low_freq_low_aov",
    ]
    # Medians are 3 orders and 100 AOV; sitting on a cut is "low", so c1 and c2 are low/low.
    assert summary["customers"].tolist() == [1, 0, 0, 2]
    assert summary["revenue"].tolist() == [1000.0, 0.0, 0.0, 250.0]
    np.testing.assert_allclose(summary["revenue_share"], [0.8, 0.0, 0.0, 0.2])
    np.testing.assert_allclose(summary["orders_per_customer"], [5.0, np.nan, np.nan, 2.0])


def test_lorenz_curve_gini_and_top_share():
    revenue = pd.Series([40.0, 10.0, 30.0, 20.0])
    curve = lorenz_curve(revenue)

    np.testing.assert_allclose(curve["customer_share"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve["revenue_share"], [0, 0.1, 0.3, 0.6, 1.0])
    assert gini(revenue) == pytest.approx(0.25)
    assert top_share(revenue, 0.2) == pytest.approx(0.32)
    assert gini(pd.Series([0.0, 0.0, 0.0, 10.0])) == pytest.approx(0.75)
    assert gini(pd.Series([5.0, 5.0])) == pytest.approx(0.0)


def test_concentration_summary():
    summary = concentration_summary(pd.Series([10.0, 20.0, 30.0, 40.0]), shares=(0.25, 0.5))

    assert summary.index.tolist() == [0.25, 0.5]
    assert summary["customers"].tolist() == [1, 2]
    np.testing.assert_allclose(summary["revenue_share"], [0.4, 0.7])


def test_concentration_counts_whole_customers():
    # The top 10 % of 15 customers is 1.5: rounded half up to 2, whose exact share is shown.
    revenue = pd.Series([float(v) for v in range(1, 16)])  # total 120; top two 15 + 14
    summary = concentration_summary(revenue, shares=(0.1, 0.2))

    assert summary["customers"].dtype == "int64"
    assert summary["customers"].tolist() == [2, 3]
    np.testing.assert_allclose(summary["revenue_share"], [29 / 120, 42 / 120])


def test_bad_inputs_are_refused():
    with pytest.raises(ValidationError, match="found 0 missing and 1 negative"):
        gini(pd.Series([1.0, -1.0]))
    with pytest.raises(ConfigError, match="scheme='deciles'"):
        value_quadrant(values([("c1", 1, 1.0)]), scheme="deciles")
    with pytest.raises(ConfigError, match="aov_cuts needs 2 cut point"):
        value_quadrant(values([("c1", 1, 1.0)]), scheme="grade", aov_cuts=[1.0])
    with pytest.raises(ValidationError, match="missing column"):
        value_quadrant(pd.DataFrame({"orders": [1]}))
