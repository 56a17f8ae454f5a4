"""The ground truth: kept apart, consistent with the tables, and better than any model can be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.demo import TRUTH_COLUMNS, load_truth
from crm_ml.demo.truth import purchase_probability
from crm_ml.errors import NotFoundError, ValidationError


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    # Average ranks of ties.
    frame = pd.DataFrame({"s": score, "r": ranks})
    ranks = frame.groupby("s")["r"].transform("mean").to_numpy()
    positives = label.sum()
    negatives = len(label) - positives
    return float((ranks[label].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _person_of(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Map every customer_id to the person's first record (duplicates share a verified phone)."""
    ids = tables["customer_identity"]
    phones = ids.loc[(ids["kind"] == "phone") & ids["verified"], ["customer_id", "value"]].merge(
        tables["customer"][["customer_id", "created_at"]], on="customer_id"
    )
    first = (
        phones.sort_values(["created_at", "customer_id"])
        .groupby("value")["customer_id"]
        .transform("first")
    )
    mapping = pd.Series(first.to_numpy(), index=phones["customer_id"].to_numpy())
    everyone = tables["customer"]["customer_id"]
    return mapping.reindex(everyone).fillna(
        pd.Series(everyone.to_numpy(), index=everyone.to_numpy())
    )


def _bought(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, days: int) -> set[str]:
    orders = tables["orders"]
    window = orders[
        (orders["ordered_at"] >= as_of) & (orders["ordered_at"] < as_of + pd.Timedelta(days=days))
    ]
    return set(_person_of(tables).reindex(window["customer_id"]).to_numpy())


def test_truth_is_written_beside_the_store_and_reads_back(generated):
    path = generated.summary.truth_path
    assert path is not None and path.name == "demo.duckdb.truth.parquet"
    truth = load_truth(path)
    assert tuple(truth.columns) == TRUTH_COLUMNS
    pd.testing.assert_frame_equal(truth, generated.summary.truth, check_dtype=False)


def test_truth_is_not_a_table_of_the_store(generated):
    from crm_ml.store import table_counts

    assert not any("truth" in name for name in table_counts(generated.store).index)


def test_truth_covers_each_person_at_monthly_snapshots(generated):
    truth = generated.summary.truth
    snapshots = sorted(truth["as_of"].unique())
    assert len(snapshots) == 36
    assert pd.Timestamp(snapshots[0]) == pd.Timestamp("2023-02-01")
    assert pd.Timestamp(snapshots[-1]) == pd.Timestamp("2026-01-01")
    last = truth[truth["as_of"] == snapshots[-1]]
    assert last["customer_id"].is_unique
    assert len(last) == generated.summary.n_customers
    assert set(last["customer_id"]) <= set(generated.tables["customer"]["customer_id"])


def test_truth_values_are_probabilities_and_zero_for_people_who_left(generated):
    truth = generated.summary.truth
    for column in ("p_purchase_30d", "p_purchase_90d"):
        assert truth[column].between(0, 1).all()
    assert (truth["p_purchase_90d"] >= truth["p_purchase_30d"] - 1e-12).all()
    gone = truth[~truth["is_alive"]]
    assert (gone[["p_purchase_30d", "p_purchase_90d", "treatment_effect_30d"]] == 0).all().all()
    alive = truth[truth["is_alive"]]
    assert (alive["treatment_effect_30d"] > 0).mean() > 0.2
    assert (alive["treatment_effect_30d"] < 0).any()


def test_people_who_left_never_buy_again(generated):
    truth = generated.summary.truth
    as_of = pd.Timestamp("2025-01-01")
    gone = set(truth.loc[(truth["as_of"] == as_of) & ~truth["is_alive"], "customer_id"])
    assert not gone & _bought(generated.tables, as_of, 365)


def test_true_probabilities_are_calibrated_against_the_tables(generated):
    truth = generated.summary.truth
    predicted, observed = [], []
    for as_of in pd.to_datetime(
        ["2024-04-01", "2024-07-01", "2024-10-01", "2025-01-01", "2025-04-01"]
    ):
        snap = truth[truth["as_of"] == as_of]
        bought = snap["customer_id"].isin(_bought(generated.tables, as_of, 90))
        predicted.append(snap["p_purchase_90d"].mean())
        observed.append(bought.mean())
    # Campaigns started after the snapshot add purchases the truth does not foresee.
    assert np.mean(observed) == pytest.approx(np.mean(predicted), rel=0.15)


def test_oracle_auc_is_high(generated):
    truth = generated.summary.truth
    as_of = pd.Timestamp("2025-07-01")
    snap = truth[truth["as_of"] == as_of]
    bought = snap["customer_id"].isin(_bought(generated.tables, as_of, 90)).to_numpy()
    assert _auc(snap["p_purchase_90d"].to_numpy(), bought) > 0.8


def test_purchase_probability_by_hand():
    assert purchase_probability(np.array([0.0]), np.array([0.5]))[0] == 0.0
    assert purchase_probability(np.array([1.0]), np.array([0.0]))[0] == pytest.approx(
        1 - np.exp(-1)
    )
    # With an equal leaving hazard, half of the events that happen are purchases.
    assert purchase_probability(np.array([1.0]), np.array([1.0]))[0] == pytest.approx(
        0.5 * (1 - np.exp(-2))
    )


def test_load_truth_says_when_the_file_is_missing(tmp_path):
    with pytest.raises(NotFoundError, match="No ground-truth file"):
        load_truth(tmp_path / "nope.parquet")


def test_load_truth_refuses_another_parquet_file(tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"customer_id": ["C1"], "x": [1]}).to_parquet(path)
    with pytest.raises(ValidationError, match="missing columns as_of"):
        load_truth(path)


def test_true_treatment_effect_predicts_measured_uplift(generated):
    contacts = generated.tables["campaign_contact"].copy()
    contacts["as_of"] = contacts["contacted_at"].dt.to_period("M").dt.to_timestamp()
    joined = contacts.merge(generated.summary.truth, on=["customer_id", "as_of"])
    joined["moved"] = joined["treatment_effect_30d"] > 0.01
    rates = joined.groupby(["moved", "contact_group"])["responded"].mean().unstack()
    uplift = rates["treatment"] - rates["control"]
    assert uplift[True] > uplift[False] + 0.05
    assert abs(uplift[False]) < 0.05
