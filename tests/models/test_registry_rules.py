"""Registry rules: a label per registered name, the baseline gate, run lineage, the pyfunc."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.models.training import train_model

from .synthetic import TINY, make_training_frame

WEAK = {**TINY, "n_estimators": 3, "num_leaves": 2}

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_training_frame(n=400)


def test_a_category_model_registers_under_its_own_name(tmp_path: Path, frame) -> None:
    from crm_ml.models.tracking import list_versions, resolve_version, version_tags

    own = project_settings(tmp_path)
    kwargs = {"horizon_days": 90, "label": "purchased", "model_params": TINY}
    anything = train_model("propensity", frame, own, **kwargs).registered
    beauty = train_model("propensity", frame, own, category="beauty", **kwargs).registered
    assert (anything.name, anything.alias) == ("crm-propensity", "champion")
    assert (beauty.name, beauty.version, beauty.alias) == ("crm-propensity-beauty", "1", "champion")
    assert resolve_version("crm-propensity@champion", own) == ("crm-propensity", "1")
    tags = version_tags("crm-propensity-beauty", "1", own)
    assert (tags["label"], tags["category"]) == ("purchase:beauty", "beauty")
    assert version_tags("crm-propensity", "1", own)["category"] == "all"
    params = mlflow.MlflowClient().get_run(beauty.run_id).data.params
    assert (params["category"], params["label"], params["label_column"]) == (
        "beauty",
        "purchase:beauty",
        "purchased",
    )
    assert list_versions("crm-propensity-beauty", own).loc[1, "label"] == "purchase:beauty"
    with pytest.raises(ValidationError, match="narrows the propensity label only"):
        train_model("churn", frame, own, category="beauty", horizon_days=90)


def _training_set(frame: pd.DataFrame, category: str | None):
    """The synthetic frame as a TrainingSet labelled with purchases (of ``category``)."""
    from crm_ml.features.training import TrainingSet

    stacked = frame.rename(columns={"purchased": "label"}).drop(columns="churned")
    stacked = stacked.set_index(["as_of", "customer_id"])
    return TrainingSet(stacked, pd.DataFrame(), "purchase", 90, category)


def test_a_training_set_of_a_category_registers_under_that_category(tmp_path: Path, frame):
    own = project_settings(tmp_path)
    beauty = _training_set(frame, "beauty")
    # Left out, the category comes from the set: crm-propensity keeps no beauty model.
    registered = train_model("propensity", beauty, own, model_params=TINY).registered
    assert registered.name == "crm-propensity-beauty"
    with pytest.raises(ValidationError, match="built with category='beauty'"):
        train_model("propensity", beauty, own, category="food", model_params=TINY)
    with pytest.raises(ValidationError, match=r"no category \(any purchase\)"):
        train_model("propensity", _training_set(frame, None), own, category="food")


def test_a_champion_of_another_horizon_is_never_replaced(tmp_path: Path, frame) -> None:
    from crm_ml.models.tracking import list_versions

    own = project_settings(tmp_path)
    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    sixty = train_model("churn", frame, own, horizon_days=60, model_params=TINY).registered
    assert sixty.alias == "challenger"
    assert sixty.reason.startswith("champion v1 predicts over 90 days, this version over 60")
    versions = list_versions("crm-churn", own)
    assert list(versions["horizon_days"]) == ["60", "90"]
    assert versions.loc[1, "aliases"] == "champion"


def test_an_own_feature_is_warned_about_and_its_model_stays_challenger(
    tmp_path: Path, frame, caplog
) -> None:
    own = project_settings(tmp_path)
    extended = frame.assign(orders_7d=frame["orders_365d"] // 50)
    with caplog.at_level(logging.WARNING, logger="crm_ml.models.training"):
        default = train_model("churn", extended, None, horizon_days=90, register=False)
    assert "orders_7d" not in default.features
    assert "Left out 1 column(s) that are not catalogue features: orders_7d" in caplog.text
    # Asked for by name, it is used, but `crm-ml score` could not feed the model.
    asked = train_model(
        "churn",
        extended,
        own,
        horizon_days=90,
        features=[*default.features, "orders_7d"],
        model_params=TINY,
    )
    assert "orders_7d" in asked.features
    assert asked.registered.alias == "challenger"  # even as the first version
    assert asked.registered.reason.startswith(
        "uses 1 feature(s) customer_features does not build (orders_7d)"
    )


def test_a_champion_of_another_label_is_never_compared(tmp_path: Path, frame) -> None:
    own = project_settings(tmp_path)
    train_model("propensity", frame, own, horizon_days=90, label="purchased", model_params=TINY)
    # The same registered name, but the labels are another column: not comparable.
    other = train_model(
        "propensity", frame, own, horizon_days=90, label="churned", model_params=TINY
    ).registered
    assert other.alias == "challenger"
    assert other.reason.startswith(
        "champion v1 learned the label 'purchase', this version 'churned': not comparable"
    )


def test_a_model_a_baseline_beats_is_not_champion_even_first(tmp_path: Path, frame) -> None:
    from crm_ml.models.tracking import resolve_version

    own = project_settings(tmp_path)
    result = train_model("churn", frame, own, horizon_days=90, model_params=WEAK)
    aucs = result.backtest.metrics["roc_auc"].astype(float)
    assert aucs["model"] < aucs["recency_rule"] == aucs.drop("model").max()  # the setting
    assert result.registered.alias == "challenger"
    assert result.registered.reason == (
        f"backtest AUC {aucs['model']:.4f} is below the recency rule baseline's "
        f"{aucs['recency_rule']:.4f} on the same backtest; not made champion"
    )
    with pytest.raises(NotFoundError, match=r"crm-ml models promote crm-churn VERSION"):
        resolve_version("crm-churn@champion", own)
    # A model that beats its baselines still becomes champion.
    better = train_model("churn", frame, own, horizon_days=90, model_params=TINY).registered
    assert better.alias == "champion" and better.reason == "first version: no champion yet"


def test_small_snapshots_are_warned_about(frame, caplog) -> None:
    from crm_ml.models.training import small_data_warnings

    with caplog.at_level(logging.WARNING, logger="crm_ml.models.training"):
        result = train_model(
            "churn", frame, None, horizon_days=90, model_params=TINY, register=False
        )
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(
        "4 of 4 snapshots have fewer than 1,000 customers or 100 of either class (the smallest, "
    )
    assert "Few customers to learn from: 4 of 4 snapshots" in caplog.text
    assert small_data_warnings(make_training_frame(n=1200), label="churned") == []


def test_runs_log_the_gap_stable_metric_names_and_lineage(tmp_path: Path, frame) -> None:
    secret = "postgresql+psycopg://crm:s3cret@db.example/crm"
    own = project_settings(tmp_path, database_url=secret)
    reg = train_model("churn", frame, own, horizon_days=90, gap_days=91, model_params=TINY)
    run = mlflow.MlflowClient().get_run(reg.registered.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["gap_days"] == "91"
    assert {"backtest_precision_at_10pct", "backtest_recall_at_1pct"} <= set(metrics)
    # A runs table shows a stepped metric's last step: the top decile gets a scalar.
    lift = reg.backtest.lift.query("model == 'model' and decile == 1").iloc[0]
    assert metrics["backtest_top_decile_lift"] == pytest.approx(lift["lift"])
    assert metrics["backtest_top_decile_gains"] == pytest.approx(lift["gains"])
    assert "backtest_lift" not in metrics and "backtest_gains" not in metrics
    # The whole curve is the stepped metric's history, one step per decile.
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "backtest_gains_by_decile")
    curve = reg.backtest.lift.query("model == 'model'").sort_values("decile")
    history = sorted(history, key=lambda m: m.step)
    assert [m.step for m in history] == curve["decile"].tolist()
    assert [m.value for m in history] == pytest.approx(curve["gains"].tolist())
    assert not [k for k in metrics if re.search(r"_at_\d+\.\d+pct", k)]
    assert params["crm_ml_version"]
    assert params["store_url"] == "postgresql+psycopg://crm:***@db.example/crm"
    assert "s3cret" not in json.dumps({**params, **tags})
    assert params["training_rows"] == str(len(frame))
    assert params["backtest_test_rows"] == "400"
    assert re.fullmatch(r"[0-9a-f]{16}", params["training_data_sha256"])
    # The same metrics over the test customers who bought in the last 180 days.
    active = reg.backtest.active_metrics.loc["model"]
    assert metrics["backtest_active_roc_auc"] == pytest.approx(active["roc_auc"])
    assert metrics["backtest_active_customers"] == active["customers"] < 400
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "backtest")}
    assert {"backtest/active_metrics.csv", "backtest/calibration_by_decile.csv"} <= logged
    assert re.fullmatch(r"[0-9a-f]{40}", tags["mlflow.source.git.commit"])
    # Without gap_days, the snapshots' spacing is logged (never an empty string).
    again = train_model("churn", frame, own, horizon_days=90, model_params=TINY).registered
    assert mlflow.MlflowClient().get_run(again.run_id).data.params["gap_days"] == "91"


def test_runs_log_the_stores_last_order(tmp_path: Path, frame, duckdb_store) -> None:
    from sqlalchemy import insert

    from crm_ml.store.schema import Customer, Order

    with duckdb_store.begin() as conn:
        conn.execute(insert(Customer), [{"customer_id": "C1", "created_at": datetime(2024, 1, 1)}])
        order = {"order_id": "O1", "customer_id": "C1", "channel": "offline"}
        conn.execute(
            insert(Order),
            [{**order, "ordered_at": datetime(2024, 12, 30, 10), "gross_amount": 10.0,
              "net_amount": 10.0}],
        )  # fmt: skip
    own = project_settings(tmp_path)
    reg = train_model(
        "churn", frame, own, horizon_days=90, store=duckdb_store, model_params=TINY
    ).registered
    params = mlflow.MlflowClient().get_run(reg.run_id).data.params
    assert params["store_last_order"] == "2024-12-30T10:00:00"
    assert params["store_url"] == duckdb_store.url and params["store_url_from"] == "store"


def test_pyfunc_predicts_on_category_columns_in_the_settings_language(
    tmp_path: Path, frame, monkeypatch
) -> None:
    from crm_ml.models.tracking import load_model

    own = project_settings(tmp_path)
    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    latest = frame[frame["as_of"] == frame["as_of"].max()].set_index("customer_id")
    X = latest.drop(columns=["as_of", "churned", "purchased"]).head(20)
    X = X.astype({"city_tier": "category"})  # as customer_features: indexed by customer_id
    assert isinstance(X["city_tier"].dtype, pd.CategoricalDtype)
    expected = load_model("crm-churn@champion", own).model.predict_proba(X)[:, 1]

    pyfunc = mlflow.pyfunc.load_model("models:/crm-churn@champion")
    scores = pyfunc.predict(X)
    np.testing.assert_allclose(scores["probability"], expected)
    assert scores.index.equals(X.index)  # joins back by customer id, not row order
    monkeypatch.setenv("CRM_ML_LANGUAGE", "zh")
    zh = pyfunc.predict(X, params={"reasons": True})["reasons"]
    assert re.search(r"[\u4e00-\u9fff]", zh.iloc[0])
    monkeypatch.setenv("CRM_ML_LANGUAGE", "en")
    en = pyfunc.predict(X, params={"reasons": True})["reasons"]
    assert not re.search(r"[\u4e00-\u9fff]", en.iloc[0]) and json.loads(en.iloc[0])[0]["text"]
    asked = pyfunc.predict(X, params={"reasons": True, "language": "zh"})["reasons"]
    assert list(asked) == list(zh)


def test_models_list_shows_category_models_and_runs(tmp_path: Path, frame, monkeypatch, capsys):
    from crm_ml.cli import main

    own = project_settings(tmp_path)
    monkeypatch.setenv("CRM_ML_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own.mlflow_tracking_uri)
    beauty = train_model(
        "propensity", frame, own, horizon_days=90, label="purchased", category="beauty",
        model_params=TINY,
    ).registered  # fmt: skip
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "crm-propensity-beauty:" in out and beauty.run_id in out and "purchase:beauty" in out
    assert "`crm-ml train churn`" in out  # crm-churn is not registered yet


def test_training_from_python_prints_no_mlflow_routine_notes(tmp_path: Path, frame, capfd):
    own = project_settings(tmp_path)
    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    train_model("churn", frame, own, horizon_days=90, model_params=TINY)
    out, err = capfd.readouterr()
    for note in ("CloudPickle", "Created version", "already exists", "Validating input"):
        assert note not in out + err, note


def test_a_model_no_better_than_chance_is_warned_about(caplog) -> None:
    from crm_ml.models.training import chance_warnings

    # Leaves of at least 1,000 customers: LightGBM cannot split 3 x 300, every score is one.
    params = {**TINY, "min_child_samples": 1000}
    with caplog.at_level(logging.WARNING, logger="crm_ml.models.training"):
        result = train_model(
            "churn", make_training_frame(n=300), None, horizon_days=90, model_params=params,
            register=False,
        )  # fmt: skip
    assert result.backtest.metrics.loc["model", "roc_auc"] == pytest.approx(0.5)
    assert "No better than chance: the model learnt nothing from this data" in caplog.text
    assert any("learnt nothing" in w for w in result.warnings)

    metrics = pd.DataFrame(
        {"roc_auc": [0.51, 0.88, 0.86]}, index=["model", "recency_rule", "bg_nbd"]
    )
    (warning,) = chance_warnings(metrics)
    assert warning.endswith(
        "The recency rule baseline ranks them with AUC 0.880: use it, or train again on "
        "more customers or snapshots"
    )
    assert chance_warnings(metrics.assign(roc_auc=[0.55, 0.88, 0.86])) == []
