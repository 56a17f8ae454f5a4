from datetime import timedelta

import pandas as pd
import pytest

from crm_ml.errors import ConfigError, NotFoundError
from crm_ml.features import (
    churn_labels,
    churn_sensitivity,
    last_order_at,
    purchase_labels,
    tier_downgrade_labels,
    training_frame,
)

from .rows import insert_rows
from .sample import AFTER, AS_OF, sample_tables

#: A last order long after the sample's (c6 joins after AS_OF, so no label at AS_OF sees it):
#: the data then covers the label windows these tests look at.
LATE = AS_OF + timedelta(days=200)


@pytest.fixture
def plain_store(store):
    insert_rows(store, sample_tables())
    return store


@pytest.fixture
def sample_store(plain_store):
    late = dict(order_id="late", customer_id="c6", ordered_at=LATE, gross_amount=1.0)
    insert_rows(plain_store, {"orders": [late]})
    return plain_store


def as_dict(frame: pd.DataFrame) -> dict[str, bool]:
    return {k: bool(v) for k, v in frame.iloc[:, 0].items()}


def test_churn_is_no_purchase_in_the_horizon_among_buyers(sample_store):
    labels = churn_labels(sample_store, AS_OF, 30)
    assert list(labels.columns) == ["churned"] and labels.index.name == "customer_id"
    # c1 buys exactly at as_of (o6): that order is the label's, not a feature. c7 never bought.
    assert as_dict(labels) == {"c1": False, "c10": True, "c2": True, "c9": True}
    everyone = churn_labels(sample_store, AS_OF, 30, buyers_only=False)
    assert "c7" in everyone.index


def test_a_merged_customers_purchase_counts_for_the_survivor(sample_store):
    insert_rows(
        sample_store,
        {
            "orders": [
                dict(
                    order_id="x1",
                    customer_id="c4",
                    ordered_at=AS_OF + timedelta(days=1),
                    gross_amount=5.0,
                )
            ]
        },
    )
    assert not churn_labels(sample_store, AS_OF, 30).loc["c2", "churned"]


def test_the_label_window_excludes_its_end(sample_store):
    # o7 is at as_of + 3 days: [as_of + 1 d, as_of + 3 d) misses it, [.., as_of + 4 d) holds it.
    start = AS_OF + timedelta(days=1)
    assert not purchase_labels(sample_store, start, 2).loc["c1", "purchased"]
    assert purchase_labels(sample_store, start, 3).loc["c1", "purchased"]


def test_purchase_labels_by_category(sample_store):
    assert purchase_labels(sample_store, AS_OF, 30, category="electronics").loc["c1", "purchased"]
    food = purchase_labels(sample_store, AS_OF, 30, category="food")
    assert not food["purchased"].any()
    assert list(food.index) == ["c1", "c10", "c2", "c7", "c9"]


def test_a_category_is_its_code_or_chinese_name_and_unknown_ones_are_refused(sample_store):
    by_name = purchase_labels(sample_store, AS_OF, 30, category="数码")
    by_code = purchase_labels(sample_store, AS_OF, 30, category="electronics")
    pd.testing.assert_frame_equal(by_name, by_code)
    with pytest.raises(NotFoundError, match=r"'Food'.*Did you mean 'food'\?.*categories: "):
        purchase_labels(sample_store, AS_OF, 30, category="Food")
    with pytest.raises(NotFoundError, match="category 'jewelry'"):
        training_frame(sample_store, [AS_OF], 30, 30, label="purchase", category="jewelry")
    with pytest.raises(ConfigError, match="label='churn' has none"):
        training_frame(sample_store, [AS_OF], 30, 30, label="churn", category="food")


def test_tier_downgrade_only_for_customers_above_the_lowest_tier(sample_store):
    insert_rows(
        sample_store,
        {
            "tier_change": [
                dict(
                    customer_id="c9",
                    changed_at=AFTER + timedelta(days=2),
                    from_tier="gold",
                    to_tier="silver",
                    direction="down",
                )
            ]
        },
    )
    assert as_dict(tier_downgrade_labels(sample_store, AS_OF, 30)) == {"c9": True}
    assert as_dict(tier_downgrade_labels(sample_store, AS_OF, 5)) == {"c9": False}


def test_last_order_is_where_the_data_ends(plain_store):
    assert last_order_at(plain_store) == AFTER


def test_churn_sensitivity_table(plain_store):
    table = churn_sensitivity(plain_store, "2024-05-01")
    assert list(table.index) == [30, 60, 90, 180]
    assert list(table.columns) == ["customers", "flagged", "prevalence", "complete"]
    assert table["customers"].tolist() == [3, 3, 3, 3]
    # The data ends with 2024-07-04: the 90- and 180-day windows run past it, so who churned
    # over them is unknown (everyone still silent would read as churned).
    assert table["complete"].tolist() == [True, True, False, False]
    assert table["flagged"].tolist() == [2, 1, pd.NA, pd.NA]
    nan = float("nan")
    assert table["prevalence"].tolist() == pytest.approx([2 / 3, 1 / 3, nan, nan], nan_ok=True)


@pytest.mark.parametrize("horizon", [0, -5, 1.5, True])
def test_horizon_must_be_positive_whole_days(duckdb_store, horizon):
    with pytest.raises(ConfigError, match="horizon_days must be a positive whole number"):
        churn_labels(duckdb_store, AS_OF, horizon)
