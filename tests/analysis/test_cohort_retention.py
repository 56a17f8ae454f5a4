from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_rows import order, refund

from crm_ml.analysis import cohort_table, retention_matrix
from crm_ml.errors import ConfigError, ValidationError

AS_OF = "2024-04-01"


@pytest.fixture
def cohort_store(store, insert):
    insert(
        "orders",
        [
            order("o1", "c1", "2024-01-05 10:00", 100.0),
            order("o2", "c1", "2024-02-10 10:00", 50.0),
            order("o3", "c1", "2024-03-15 10:00", 30.0),
            order("o4", "c2", "2024-01-20 10:00", 200.0),
            order("o5", "c2", "2024-03-01 00:00", 100.0),
            order("o6", "c3", "2024-02-03 10:00", 80.0),
            order("o7", "c3", "2024-02-20 10:00", 20.0),
            # The last microsecond before as_of is read; as_of itself is not.
            order("o8", "c4", "2024-03-31 23:59:59.999999", 10.0),
            order("o9", "c5", "2024-04-01 00:00:00", 999.0),
            order("o10", "c1", "2024-04-01 00:00:00", 999.0),
        ],
    )
    insert(
        "order_item",
        [
            refund("o4", 200.0, "2024-02-01 09:00", 50.0),  # known by as_of: Jan revenue 150
            refund("o3", 30.0, "2024-04-01 00:00", 30.0),  # made at as_of: not yet known
        ],
    )
    return store


def test_cohort_table_counts_customers_and_net_revenue(cohort_store):
    table = cohort_table(cohort_store, AS_OF)

    assert table["cohort"].astype(str).tolist() == [
        "2024-01", "2024-01", "2024-01", "2024-02", "2024-02", "2024-03",
    ]  # fmt: skip
    assert table["months_since"].tolist() == [0, 1, 2, 0, 1, 0]
    assert table["customers"].tolist() == [2, 1, 2, 1, 0, 1]
    assert table["revenue"].tolist() == [250.0, 50.0, 130.0, 100.0, 0.0, 10.0]
    assert table["cohort_customers"].tolist() == [2, 2, 2, 1, 1, 1]
    assert table["customer_retention"].tolist() == [1.0, 0.5, 1.0, 1.0, 0.0, 1.0]
    np.testing.assert_allclose(table["revenue_retention"], [1.0, 0.2, 0.52, 1.0, 0.0, 1.0])
    assert str(table["cohort"].dtype) == "period[M]"


def test_retention_matrix_leaves_unreached_months_missing(cohort_store):
    matrix = retention_matrix(cohort_table(cohort_store, AS_OF))

    assert matrix.index.astype(str).tolist() == ["2024-01", "2024-02", "2024-03"]
    assert matrix.columns.tolist() == [0, 1, 2]
    expected = [[1.0, 0.5, 1.0], [1.0, 0.0, np.nan], [1.0, np.nan, np.nan]]
    np.testing.assert_array_equal(matrix.to_numpy(), expected)


def test_month_containing_as_of_is_left_out(cohort_store):
    # Mid-March: March is partial, so only January and February are complete.
    table = cohort_table(cohort_store, "2024-03-20")

    assert sorted(set(table["cohort"].astype(str))) == ["2024-01", "2024-02"]
    assert table["months_since"].max() == 1


def test_business_time_zone_moves_orders_across_month_ends(cohort_store):
    # 23:59 UTC on 31 March is 1 April in Shanghai, a month not complete at as_of.
    table = cohort_table(cohort_store, AS_OF, tz="Asia/Shanghai")

    assert sorted(set(table["cohort"].astype(str))) == ["2024-01", "2024-02"]


def test_empty_store_gives_empty_typed_table(store):
    table = cohort_table(store, AS_OF)

    assert table.empty
    assert table["customers"].dtype == "int64"


def test_retention_matrix_rejects_unknown_metric():
    with pytest.raises(ConfigError, match="metric='ltv' is not one of"):
        retention_matrix(pd.DataFrame(), metric="ltv")


def test_bad_as_of_and_time_zone_are_refused(store):
    with pytest.raises(ValidationError, match="is not a timestamp"):
        cohort_table(store, "next tuesday")
    with pytest.raises(ConfigError, match="Unknown time zone"):
        cohort_table(store, AS_OF, tz="China/Beijing")
