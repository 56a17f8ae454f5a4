"""An erasure while a run computes scores, tags or a snapshot: the run writes nothing for them.

A run reads who is erased before it computes; an erasure committed meanwhile
must still win. Each run reads the marks again in its writing transaction
(every engine), and on PostgreSQL, where the two transactions can overlap, an
erasure waits for a writing run to commit and then deletes what it wrote.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features
from models.synthetic import TINY, make_snapshot
from store_urls import POSTGRES_URL, drop_postgres_database, make_store_url

from crm_ml.erasure import erase_customer
from crm_ml.models import scoring
from crm_ml.models.estimators import ChurnModel
from crm_ml.models.scoring import read_scores, score_customers
from crm_ml.segments import Segment, save_segment, snapshot_segment
from crm_ml.store import Store, init_store
from crm_ml.tags import apply as tag_apply
from crm_ml.tags import apply_tags, customers_with_tag
from crm_ml.tags.library import builtin_tags

NUMERIC = ["recency_days", "interpurchase_mean_days", "orders_lifetime", "complaints_90d"]
IDS = ["c1", "c2", "c3", "c4"]


@pytest.fixture(scope="module")
def churn_model() -> ChurnModel:
    train = make_snapshot(pd.Timestamp("2024-01-01"), 400, seed=1)
    return ChurnModel(**TINY).fit(train[NUMERIC], train["churned"])


def _features() -> pd.DataFrame:
    return features(
        recency_days=[200.0, 10.0, 400.0, 35.0],
        interpurchase_mean_days=[30.0, 30.0, 20.0, 60.0],
        orders_lifetime=[3, 8, 2, 5],
        complaints_90d=[2, 0, 1, 0],
    )


def _erase(store: Store, customer: str) -> None:
    erase_customer(store, customer, actor="合规官", reason="ticket DPO-17")


def test_a_person_erased_while_scores_are_computed_gets_none(store, churn_model, monkeypatch):
    add_customers(store, IDS)
    computing = scoring.score_batches

    def erased_meanwhile(*args, **kwargs):
        _erase(store, "c2")  # after the run read the marks, before it writes
        return computing(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_batches", erased_meanwhile)
    summary = score_customers(store, _features(), D1, model=churn_model)
    assert read_scores(store, model_name="crm-churn", as_of=D1).index.tolist() == [
        "c1",
        "c3",
        "c4",
    ]
    assert (int(summary["customers"].sum()), summary.attrs["erased"]) == (3, 1)


def test_a_person_erased_while_tags_are_evaluated_is_not_tagged(store, monkeypatch):
    add_customers(store, IDS)
    evaluating = tag_apply._members

    def erased_meanwhile(*args, **kwargs):
        members = evaluating(*args, **kwargs)
        _erase(store, "c2")
        return members

    monkeypatch.setattr(tag_apply, "_members", erased_meanwhile)
    rule = [d for d in builtin_tags() if d.name == "repeat_customer"]
    apply_tags(store, _features(), D1, definitions=rule)
    assert customers_with_tag(store, "repeat_customer", D1).tolist() == ["c1", "c3", "c4"]


def test_a_person_erased_while_a_segment_is_evaluated_is_not_a_member(store, monkeypatch):
    from crm_ml.segments import members as segment_members

    add_customers(store, IDS)
    save_segment(store, Segment("lapsing", "recency_days > 30", "流失风险"), actor="tester")
    evaluating = segment_members.evaluate_segment

    def erased_meanwhile(*args, **kwargs):
        found = evaluating(*args, **kwargs)  # c3 is a member by the rule
        _erase(store, "c3")
        return found

    monkeypatch.setattr(segment_members, "evaluate_segment", erased_meanwhile)
    assert snapshot_segment(store, "lapsing", _features(), D1).tolist() == ["c1", "c4"]


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Store]:
    url, database = make_store_url("postgresql", tmp_path)
    pg = Store(url)
    init_store(pg)
    yield pg
    pg.dispose()
    assert database
    drop_postgres_database(database)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CRM_ML_TEST_POSTGRES_URL (CI sets it)")
def test_on_postgres_an_erasure_during_a_scoring_run_waits_and_deletes_its_score(
    postgres, churn_model, monkeypatch
):
    add_customers(postgres, IDS)
    computing = scoring.score_batches
    erasure = threading.Thread(target=_erase, args=(postgres, "c2"))
    waited: list[bool] = []

    def erased_while_writing(*args, **kwargs) -> Iterator[pd.DataFrame]:
        batches = computing(*args, **kwargs)
        yield next(batches)  # the run's transaction is open and has deleted the old scores
        erasure.start()
        time.sleep(1.0)
        waited.append(erasure.is_alive())  # blocked until the run commits
        yield from batches

    monkeypatch.setattr(scoring, "score_batches", erased_while_writing)
    score_customers(postgres, _features(), D1, model=churn_model, batch_size=2)
    erasure.join(timeout=30)
    assert waited == [True]
    assert read_scores(postgres, model_name="crm-churn", as_of=D1).index.tolist() == [
        "c1",
        "c3",
        "c4",
    ]
