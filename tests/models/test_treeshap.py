"""Our vectorised TreeSHAP must give LightGBM's own ``pred_contrib`` values."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from crm_ml.models import treeshap
from crm_ml.models.estimators import ChurnModel, _lightgbm_matrix
from crm_ml.models.treeshap import shap_tables, shap_values


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    recency = rng.exponential(60, n)
    recency[rng.random(n) < 0.1] = np.nan  # never bought
    orders = rng.poisson(3, n).astype(float)  # many exact zeros
    channel = rng.choice(["store", "app", "web", "referral"], n).astype(object)
    channel[rng.random(n) < 0.05] = None
    X = pd.DataFrame(
        {
            "recency_days": recency,
            "orders_lifetime": orders,
            "complaints_90d": rng.poisson(0.2, n).astype(float),
            "acquisition_channel": channel,
            "noise": rng.normal(size=n),
        }
    )
    logit = -0.02 * np.nan_to_num(recency, nan=400) + 0.4 * orders - 0.8 * X["complaints_90d"]
    logit += np.where(channel == "app", 0.7, 0.0)
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": 30, "num_leaves": 15, "max_depth": 4, "min_child_samples": 20},
        {"n_estimators": 20, "num_leaves": 31, "max_depth": 6, "min_child_samples": 5},
    ],
)
def test_equals_lightgbm_pred_contrib(params) -> None:
    X, y = _data(4000, seed=1)
    model = ChurnModel(**params, calibration="none").fit(X, y)
    X_new, _ = _data(1500, seed=2)
    X_new.loc[:20, "acquisition_channel"] = "carrier_pigeon"  # unseen category -> missing
    prepared = model._prepare(X_new)
    expected = model.booster_.predict(prepared, pred_contrib=True)
    tables = shap_tables(model.booster_)
    assert tables is not None
    ours = shap_values(tables, _lightgbm_matrix(prepared), n_jobs=1)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)
    # The model's contributions use it, and agree as well.
    np.testing.assert_allclose(model.contributions(X_new).to_numpy(), expected, atol=1e-9)


def test_threads_and_chunks_split_rows_without_changing_values(monkeypatch) -> None:
    X, y = _data(3000, seed=3)
    model = ChurnModel(n_estimators=10, calibration="none").fit(X, y)
    big = pd.concat([_data(6000, seed=4)[0], _data(6000, seed=5)[0]], ignore_index=True)
    matrix = _lightgbm_matrix(model._prepare(big))
    tables = shap_tables(model.booster_)
    assert tables is not None
    one_thread = shap_values(tables, matrix, n_jobs=1)
    np.testing.assert_array_equal(shap_values(tables, matrix, n_jobs=2), one_thread)
    monkeypatch.setattr(treeshap, "CHUNK_ROWS", 2_500)  # 5 chunks over 2 threads
    np.testing.assert_array_equal(shap_values(tables, matrix, n_jobs=2), one_thread)


def test_zero_as_missing_and_single_leaf_trees() -> None:
    X, y = _data(2000, seed=6)
    numbers = X.drop(columns="acquisition_channel")
    params = {"objective": "binary", "zero_as_missing": True, "num_leaves": 7, "verbosity": -1}
    params |= {"max_depth": 3, "min_data_in_leaf": 400}
    booster = lgb.train(params, lgb.Dataset(numbers, y), num_boost_round=15)
    tables = shap_tables(booster)
    assert tables is not None
    expected = booster.predict(numbers, pred_contrib=True)
    np.testing.assert_allclose(shap_values(tables, numbers.to_numpy()), expected, atol=1e-9)


def test_trees_without_a_depth_limit_are_left_to_lightgbm() -> None:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(3000, 12)), columns=[f"f{i}" for i in range(12)])
    y = (X.sum(axis=1) + rng.normal(size=3000) > 0).astype(int)
    deep = ChurnModel(n_estimators=5, num_leaves=255, max_depth=-1, min_child_samples=2)
    deep.set_params(calibration="none", colsample_bytree=1.0).fit(X, y)
    # Some path has more than 8 distinct features: no tables, LightGBM's own values instead.
    assert shap_tables(deep.booster_) is None
    X_new = X.head(200)
    expected = deep.booster_.predict(deep._prepare(X_new), pred_contrib=True)
    np.testing.assert_allclose(deep.contributions(X_new).to_numpy(), expected)


@pytest.mark.parametrize("group_bits", [0, 4, 8, 12, 16])
def test_any_grouping_of_leaves_gives_the_same_values(group_bits, monkeypatch) -> None:
    # 0: every leaf looked up alone; 16: whole trees in one table (uint16 indexes).
    monkeypatch.setattr(treeshap, "MAX_GROUP_BITS", group_bits)
    X, y = _data(4000, seed=8)
    model = ChurnModel(n_estimators=15, num_leaves=31, max_depth=6, min_child_samples=5)
    model.set_params(calibration="none").fit(X, y)
    prepared = model._prepare(_data(800, seed=9)[0])
    tables = shap_tables(model.booster_)
    assert tables is not None
    ours = shap_values(tables, _lightgbm_matrix(prepared), n_jobs=1)
    np.testing.assert_allclose(ours, model.booster_.predict(prepared, pred_contrib=True), atol=1e-9)


def test_missing_values_never_seen_in_training_count_as_zero() -> None:
    # Trained without NaN, LightGBM sends NaN where 0 goes (thresholds on both sides of 0).
    rng = np.random.default_rng(10)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    y = (X["a"] - X["b"] + rng.normal(size=3000) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "max_depth": 4, "verbosity": -1},
        lgb.Dataset(X, y),
        num_boost_round=10,
    )
    X_new = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    X_new.iloc[::3, 0] = np.nan
    X_new.iloc[1::4, 1] = np.nan
    tables = shap_tables(booster)
    assert tables is not None
    expected = booster.predict(X_new, pred_contrib=True)
    np.testing.assert_allclose(shap_values(tables, X_new.to_numpy()), expected, atol=1e-9)
