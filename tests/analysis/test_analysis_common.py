from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from crm_ml.analysis._common import as_instant, period_freq
from crm_ml.errors import ConfigError, ValidationError


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("ME", "M"),
        ("M", "M"),
        ("QE", "Q"),
        ("QE-MAR", "Q-MAR"),
        ("YE", "Y"),
        ("2ME", "2M"),
        ("W-SUN", "W-SUN"),
        ("D", "D"),
        ("month", "M"),  # plain names, as `-p period month` gives them
        ("Quarter", "Q"),
        ("week", "W-SUN"),
        ("year", "Y"),
    ],
)
def test_offset_aliases_become_period_aliases(freq, expected):
    assert period_freq(freq) == expected


def test_instants_are_naive_utc_microseconds():
    aware = datetime(2024, 7, 1, 8, 0, tzinfo=UTC).astimezone()
    assert as_instant(aware) == pd.Timestamp("2024-07-01 08:00")
    assert as_instant("2024-07-01").unit == "us"
    assert as_instant(pd.Timestamp("2024-07-01 08:00", tz="Asia/Shanghai")) == pd.Timestamp(
        "2024-07-01 00:00"
    )


def test_bad_values_are_refused():
    with pytest.raises(ValidationError, match="as_of is missing"):
        as_instant(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a calendar period"):
        period_freq("fortnightly")
