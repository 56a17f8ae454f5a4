from datetime import datetime

import pandas as pd
import pytest

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features import feature_list, training_frame

from .rows import insert_rows
from .sample import sample_tables


@pytest.fixture
def sample_store(store):
    insert_rows(store, sample_tables())
    return store


def test_snapshots_stack_with_labels_and_prevalence(sample_store):
    built = training_frame(sample_store, ["2024-05-01", "2024-06-01"], 30, 30, groups=["value"])
    frame = built.frame
    assert frame.index.names == ["as_of", "customer_id"]
    assert list(frame.columns) == [*[f.name for f in feature_list(["value"])], "label"]
    assert frame["label"].dtype == bool
    assert frame.loc[(pd.Timestamp("2024-05-01"), "c1"), "label"]  # no order in May
    assert not frame.loc[(pd.Timestamp("2024-06-01"), "c1"), "label"]  # o4 on 15 June
    prevalence = built.prevalence
    assert list(prevalence.columns) == ["customers", "positives", "prevalence", "label_end"]
    assert prevalence["customers"].tolist() == [3, 3]
    assert prevalence["positives"].tolist() == [2, 1]
    assert prevalence.loc[pd.Timestamp("2024-06-01"), "label_end"] == pd.Timestamp("2024-07-01")
    assert (built.label, built.horizon_days) == ("churn", 30)


def test_a_count_of_snapshots_ends_where_the_data_allows(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    built = training_frame(duckdb_store, 2, 30, 45, label="purchase", groups=["value"])
    # The last order is 2024-07-04: the latest snapshot is the midnight 30 days before.
    assert list(built.prevalence.index) == [pd.Timestamp("2024-04-20"), pd.Timestamp("2024-06-04")]


def test_a_label_window_past_the_data_is_refused(sample_store):
    # The last order is 2024-07-04 00:00; the data covers that day, so windows may end by 07-05.
    with pytest.raises(ValidationError, match=r"after the data ends.*on or before 2024-06-05"):
        training_frame(sample_store, ["2024-05-01", "2024-06-10"], 30, 30)
    built = training_frame(sample_store, ["2024-05-01", "2024-06-05"], 30, 30, groups=["value"])
    assert built.prevalence["label_end"].max() == pd.Timestamp("2024-07-05")


def test_snapshots_closer_than_the_gap_are_refused(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    with pytest.raises(ConfigError, match="closer than gap_days=30"):
        training_frame(duckdb_store, [datetime(2024, 5, 1), datetime(2024, 5, 15)], 30, 30)


def test_unknown_label_and_bad_gap_are_refused(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    with pytest.raises(ConfigError, match="Unknown label 'attrition'"):
        training_frame(duckdb_store, 1, 30, 30, label="attrition")
    with pytest.raises(ConfigError, match="gap_days must be a positive"):
        training_frame(duckdb_store, 1, 30, 0)
    with pytest.raises(ConfigError, match="snapshots is empty"):
        training_frame(duckdb_store, [], 30, 30)


def test_a_store_without_orders_cannot_be_labelled(duckdb_store):
    with pytest.raises(ValidationError, match="no orders"):
        training_frame(duckdb_store, 1, 30, 30)


def test_customers_erased_on_request_are_left_out_of_every_snapshot(sample_store):
    from crm_ml.erasure import erase_customer

    erase_customer(sample_store, "c1", actor="合规官", reason="ticket DPO-17")
    built = training_frame(sample_store, ["2024-05-01", "2024-06-01"], 30, 30, groups=["value"])
    assert "c1" not in built.frame.index.get_level_values("customer_id")
    assert built.prevalence["customers"].tolist() == [2, 2]
    assert built.erased == 1
    assert built.erased_note.startswith("1 customer erased on request was left out of the training")


def test_an_ibis_source_leaves_erased_customers_out_too(duckdb_store):
    from crm_ml.erasure import erase_customer
    from crm_ml.features.backend import ibis_backend

    insert_rows(duckdb_store, sample_tables())
    erase_customer(duckdb_store, "c1", actor="合规官", reason="ticket DPO-17")
    with ibis_backend(duckdb_store) as con:
        built = training_frame(con, ["2024-05-01"], 30, 30, groups=["value"])
    assert (built.erased, "c1" in built.frame.index.get_level_values("customer_id")) == (1, False)
