"""The churn model scores only the customers its label covers: those who bought before as_of.

``churn_labels`` leaves out customers with no order before ``as_of`` (who never
bought cannot churn), so the model never saw one; scoring them gave a guess
that tags and churn lists read as a high risk. A propensity label covers everyone.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features
from features.rows import insert_rows
from features.sample import AS_OF, sample_tables
from sqlalchemy import insert

from crm_ml.erasure import erase_customer
from crm_ml.errors import ValidationError
from crm_ml.features import churn_labels, customer_features
from crm_ml.models.estimators import ChurnModel, PropensityModel
from crm_ml.models.scoring import read_scores, replace_scores, score_batches, score_customers
from crm_ml.models.scoring_targets import CHURN_POPULATION
from crm_ml.segments import Segment, export_list, save_segment
from crm_ml.segments.headers import read_list
from crm_ml.store import Store
from crm_ml.store.merge import merge_customers
from crm_ml.store.schema import Consent
from crm_ml.tags import apply_tags, customers_with_tag
from crm_ml.tags.library import builtin_tags

from .synthetic import TINY, make_snapshot

NUMERIC = ["recency_days", "interpurchase_mean_days", "orders_lifetime", "complaints_90d"]
NEVER_BOUGHT = 40
CHURN_TAGS = ("churn_risk_high", "churn_risk_medium", "churn_risk_low")


def _fit(kind: type, columns: list[str], label: str):
    train = make_snapshot(pd.Timestamp("2024-01-01"), 400, seed=1)
    return kind(**TINY).fit(train[columns], train[label])


@pytest.fixture(scope="module")
def churn_model() -> ChurnModel:
    return _fit(ChurnModel, NUMERIC, "churned")


@pytest.fixture(scope="module")
def snapshot() -> pd.DataFrame:
    """250 customers as of 2024-07-01; the first 40 never bought (no orders, no recency)."""
    frame = make_snapshot(pd.Timestamp("2024-07-01"), 250, seed=3).set_index("customer_id")
    frame = frame[[*NUMERIC, "purchased"]].copy()
    never = frame.index[:NEVER_BOUGHT]
    frame.loc[never, "orders_lifetime"] = 0
    frame.loc[never, ["recency_days", "interpurchase_mean_days"]] = np.nan
    return frame


def buyers(frame: pd.DataFrame) -> list[str]:
    return sorted(frame.index[frame["orders_lifetime"] > 0])


def test_churn_scores_only_buyers_and_propensity_scores_everyone(store, churn_model, snapshot):
    summary = score_customers(store, snapshot[NUMERIC], "2024-07-01", model=churn_model)
    stored = read_scores(store, model_name="crm-churn", as_of="2024-07-01")
    assert stored.index.tolist() == buyers(snapshot)
    assert summary["customers"].sum() == 250 - NEVER_BOUGHT
    assert summary.attrs["left_out"] == NEVER_BOUGHT
    assert summary.attrs["left_out_note"].startswith(
        "40 customers who never bought have no churn score: the churn model learnt only from "
        "customers who had bought"
    )
    # purchase_labels covers everyone (a first purchase is a purchase): everyone is scored.
    propensity = _fit(PropensityModel, NUMERIC, "purchased")
    summary = score_customers(store, snapshot[NUMERIC], "2024-07-01", model=propensity)
    assert len(read_scores(store, model_name="crm-propensity", as_of="2024-07-01")) == 250
    assert summary.attrs["left_out"] == 0 and summary.attrs["left_out_note"] == ""


def test_the_scored_population_is_the_churn_labels_population(store, churn_model):
    # A store with merges, a never-buyer (c7) and an order exactly at as_of (see features.sample).
    insert_rows(store, sample_tables())
    late = dict(order_id="late", customer_id="c6", ordered_at=AS_OF + timedelta(days=200))
    insert_rows(store, {"orders": [{**late, "gross_amount": 1.0}]})
    built = customer_features(store, AS_OF)
    labelled = churn_labels(store, AS_OF, 30).index.tolist()
    assert "c7" in built.index and "c7" not in labelled
    assert built.index[CHURN_POPULATION.mask(built)].tolist() == labelled
    score_customers(store, built, AS_OF, model=churn_model)
    assert read_scores(store, model_name="crm-churn", as_of=AS_OF).index.tolist() == labelled


def test_given_only_the_date_score_customers_builds_the_features(store, churn_model):
    insert_rows(store, sample_tables())
    summary = score_customers(store, AS_OF, model=churn_model)
    built = read_scores(store, model_name="crm-churn", as_of=AS_OF)
    score_customers(store, customer_features(store, AS_OF), AS_OF, model=churn_model)
    given = read_scores(store, model_name="crm-churn", as_of=AS_OF)
    assert summary["customers"].sum() == len(built) > 0
    stamp = ["scored_at"] if "scored_at" in given.columns else []
    pd.testing.assert_frame_equal(built.drop(columns=stamp), given.drop(columns=stamp))
    with pytest.raises(ValidationError, match="needs the date of the features"):
        score_customers(store, customer_features(store, AS_OF), model=churn_model)


def test_never_buyers_get_no_churn_tag_and_are_left_off_churn_lists(
    store: Store, churn_model, tmp_path: Path
):
    ids = [f"c{i}" for i in range(1, 7)]
    add_customers(store, ids)
    with store.begin() as conn:
        conn.execute(insert(Consent), [_granted(c) for c in ids])
    frame = features(  # c5 and c6 never bought
        recency_days=[150.0, 10.0, 170.0, 35.0, None, None],  # none dormant (over 180)
        interpurchase_mean_days=[30.0, 30.0, 20.0, 60.0, None, None],
        orders_lifetime=[3, 8, 2, 5, 0, 0],
        complaints_90d=[2, 0, 1, 0, 0, 0],
        revenue_365d=[500.0, 800.0, 100.0, 300.0, 0.0, 0.0],
    )
    score_customers(store, frame, D1, model=churn_model)
    churn_tags = [t for t in builtin_tags() if t.name in CHURN_TAGS]
    apply_tags(store, frame, D1, definitions=churn_tags)
    tagged = {t: set(customers_with_tag(store, t, D1)) for t in CHURN_TAGS}
    assert set().union(*tagged.values()) == {"c1", "c2", "c3", "c4"}
    assert sum(len(members) for members in tagged.values()) == 4  # one band each
    # The retention report's churn list at threshold 0: every scored customer, no one else.
    save_segment(store, Segment("every_churn_score", "p_churn >= 0"), actor="t")
    summary = export_list(
        store,
        "every_churn_score",
        D1,
        channel="sms",
        purpose="marketing",
        out_dir=tmp_path,
        secret="s3cret-key-for-tests-0123456789",
        actor="t",
        unmask=True,
        unmask_reason="test: every score listed",
        features=frame,
        churn=True,
    )
    listed = pd.concat(read_list(path) for path in summary.files["path"])
    assert sorted(listed["customer_id"]) == ["c1", "c2", "c3", "c4"]


def _granted(customer: str) -> dict:
    return {
        "customer_id": customer,
        "channel": "sms",
        "purpose": "marketing",
        "updated_at": D1 - timedelta(days=30),
        "status": "granted",
        "source": "test",
    }


def test_rescoring_a_run_that_scored_never_buyers_needs_no_opt_in(
    duckdb_store, churn_model, snapshot
):
    # A run made before never-buyers were left out scored all 250.
    with duckdb_store.begin() as conn:
        replace_scores(conn, score_batches(churn_model, snapshot[NUMERIC]), model_name="crm-churn",
                       as_of=pd.Timestamp("2024-07-01").to_pydatetime(), model_version="1",
                       scored_at=pd.Timestamp("2024-07-02").to_pydatetime())  # fmt: skip
    score_customers(duckdb_store, snapshot[NUMERIC], "2024-07-01", model=churn_model)
    stored = read_scores(duckdb_store, model_name="crm-churn", as_of="2024-07-01")
    assert stored.index.tolist() == buyers(snapshot)
    # A partial frame is still refused: 20 buyers' scores would go.
    partial = snapshot[NUMERIC].iloc[:-20]
    with pytest.raises(ValidationError, match=r"already has 210 scores .* at least 20 others"):
        score_customers(duckdb_store, partial, "2024-07-01", model=churn_model)


def test_a_churn_model_needs_orders_lifetime_to_know_who_bought(duckdb_store, snapshot):
    # This model does not use orders_lifetime itself, yet must not score without it.
    model = _fit(ChurnModel, ["recency_days", "interpurchase_mean_days"], "churned")
    blind = snapshot[["recency_days", "interpurchase_mean_days"]]
    with pytest.raises(
        ValidationError,
        match="scores only customers with orders_lifetime >= 1, and the "
        "features have no orders_lifetime column",
    ):
        score_customers(duckdb_store, blind, "2024-07-01", model=model)


def test_a_date_before_anyone_bought_is_refused(duckdb_store, churn_model, snapshot):
    nobody = snapshot[NUMERIC].head(5).assign(orders_lifetime=0)
    with pytest.raises(
        ValidationError,
        match=r"No customers to score with crm-churn as of 2024-07-01: a churn model scores only "
        r"customers with orders_lifetime >= 1, and none of the 5 in the features has",
    ):
        score_customers(duckdb_store, nobody, "2024-07-01", model=churn_model)


def erased_person(store: Store) -> pd.DataFrame:
    """c1..c6, c6 (an old card record) merged into c5; the person erased via c6.

    Returns the features of all six, as a frame built before the merge would hold them.
    """
    add_customers(store, [f"c{i}" for i in range(1, 7)])
    plan = pd.DataFrame({"merged_id": ["c6"], "surviving_id": ["c5"]})
    merge_customers(store, plan, at=D1 - timedelta(days=10), actor="steward")
    erase_customer(store, "c6", actor="合规官", reason="ticket DPO-17")
    return features(
        recency_days=[200.0, 10.0, 400.0, 35.0, 300.0, 20.0],
        interpurchase_mean_days=[30.0, 30.0, 20.0, 60.0, 25.0, 40.0],
        orders_lifetime=[3, 8, 2, 5, 6, 1],
        complaints_90d=[2, 0, 1, 0, 3, 0],
    )


def test_an_erased_person_gets_no_score_on_the_next_run_and_the_run_says_so(store, churn_model):
    frame = erased_person(store)

    summary = score_customers(store, frame, D1, model=churn_model)

    stored = read_scores(store, model_name="crm-churn", as_of=D1)
    assert stored.index.tolist() == ["c1", "c2", "c3", "c4"]  # not c5, nor its merged c6
    assert summary["customers"].sum() == 4
    assert (summary.attrs["erased"], summary.attrs["left_out"]) == (2, 0)
    assert summary.attrs["erased_note"] == (
        "2 customers erased on request were left out of the crm-churn scores: nothing more is "
        "computed about an erased person (`crm-ml customers erase`), whose orders and points "
        "stay only for accounting."
    )


def test_features_of_erased_customers_alone_are_refused(duckdb_store, churn_model):
    frame = erased_person(duckdb_store)
    with pytest.raises(ValidationError, match=r"all 2 in the features were erased on request"):
        score_customers(duckdb_store, frame.loc[["c5", "c6"]], D1, model=churn_model)
