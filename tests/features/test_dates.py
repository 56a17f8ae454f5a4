"""Dates that used to give silent wrong answers: numbers, dates outside the data, label windows
past it, and the date a features frame was built for."""

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features import (
    churn_labels,
    customer_features,
    features_as_of,
    purchase_labels,
    tier_downgrade_labels,
)
from crm_ml.features.spec import as_timestamp
from crm_ml.features.training import snapshot_dates
from crm_ml.rules import as_timestamp as rules_as_timestamp

from .rows import insert_rows
from .sample import AS_OF, sample_tables


@pytest.fixture
def sample_store(duckdb_store):
    insert_rows(duckdb_store, sample_tables())  # data from 2021-03-03 to 2024-07-04 00:00
    return duckdb_store


@pytest.mark.parametrize("number", [20260101, 20260101.0, np.int64(20260101)])
@pytest.mark.parametrize("reader", [as_timestamp, rules_as_timestamp], ids=["features", "rules"])
def test_a_number_is_refused_not_read_as_nanoseconds(reader, number):
    with pytest.raises(ConfigError, match=r"as_of=.*20260101.* is a number, not a date"):
        reader(number)


@pytest.mark.parametrize("text", ["01/02/2026", "2026/01/02", "2 Jan 2026"])
@pytest.mark.parametrize("reader", [as_timestamp, rules_as_timestamp], ids=["features", "rules"])
def test_a_date_not_in_iso_form_is_refused_not_guessed(reader, text):
    # pandas read 01/02/2026 as 2 January: a European user meant 1 February.
    with pytest.raises(ConfigError, match=r"is not a date in ISO form; write it as YYYY-MM-DD"):
        reader(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02", datetime(2026, 1, 2)),
        (" 2026-01-02 ", datetime(2026, 1, 2)),
        ("2026-01-02T08:30:00", datetime(2026, 1, 2, 8, 30)),
        ("2026-01-02T08:00:00+08:00", datetime(2026, 1, 2)),
    ],
)
def test_iso_dates_and_times_are_read(text, expected):
    assert as_timestamp(text) == expected


def test_the_refusal_spells_the_date_a_number_means(duckdb_store):
    with pytest.raises(ConfigError, match=r"as_of=20250630 .* such as '2025-06-30'"):
        customer_features(duckdb_store, 20250630)
    with pytest.raises(ConfigError, match=r"as_of=True is a bool.* such as '2026-01-01'"):
        as_timestamp(True)


def test_snapshot_dates_take_every_date_form():
    expected = snapshot_dates(datetime(2024, 10, 1), 4, 90, 90)
    assert expected[-1] == datetime(2024, 7, 3)
    forms = [
        "2024-10-01",
        date(2024, 10, 1),
        pd.Timestamp("2024-10-01"),
        np.datetime64("2024-10-01"),
    ]
    for form in forms:
        assert snapshot_dates(form, 4, 90, 90) == expected, form
    with pytest.raises(ConfigError, match="data_end=20241001 is a number"):
        snapshot_dates(20241001, 4, 90, 90)


def test_features_refuse_dates_outside_the_data(sample_store):
    with pytest.raises(ValidationError, match=r"^as_of 2020-01-01 is before the store's data"):
        customer_features(sample_store, "2020-01-01")
    with pytest.raises(ValidationError, match=r"^as_of 2030-01-01 is 2007 days after the last"):
        customer_features(sample_store, "2030-01-01")
    # A deliberate what-if may still ask.
    assert customer_features(sample_store, "2020-01-01", allow_outside_data=True).empty
    assert len(customer_features(sample_store, "2030-01-01", allow_outside_data=True)) == 7


def test_features_carry_the_date_they_were_built_for(sample_store, tmp_path):
    aware = pd.Timestamp("2024-07-01 08:00", tz="Asia/Shanghai")  # 2024-07-01 00:00 UTC
    frame = customer_features(sample_store, aware, groups=["value"])
    assert frame.attrs["as_of"] == "2024-07-01T00:00:00"
    assert features_as_of(frame) == AS_OF
    assert features_as_of(frame.iloc[:2]) == AS_OF
    assert features_as_of(frame[frame["orders_lifetime"] > 0].assign(x=1)) == AS_OF
    # ISO text, so the user's own to_parquet works and keeps it.
    frame.to_parquet(tmp_path / "features.parquet")
    assert features_as_of(pd.read_parquet(tmp_path / "features.parquet")) == AS_OF
    assert features_as_of(pd.DataFrame()) is None


LABELS = [churn_labels, purchase_labels, tier_downgrade_labels]


@pytest.mark.parametrize("labels", LABELS, ids=lambda f: f.__name__)
def test_every_label_refuses_a_window_past_the_data(sample_store, labels):
    # The last order is 2024-07-04 00:00: the data covers windows ending by 2024-07-05.
    said = (
        r"^as_of 2024-07-01: its 30-day label window ends 2024-07-31, after the data ends "
        r"\(last order 2024-07-04 00:00 UTC; .* by 2024-07-05\).* on or before 2024-06-05"
    )
    with pytest.raises(ValidationError, match=said):
        labels(sample_store, AS_OF, 30)
    assert len(labels(sample_store, AS_OF, 4)) > 0  # ends 2024-07-05: covered
    with pytest.raises(ValidationError, match="before the store's data starts"):
        labels(sample_store, "2020-01-01", 30)
