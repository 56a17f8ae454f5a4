from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from crm_ml.errors import CrmMlError, ValidationError
from crm_ml.models.estimators import SCHEMA_FILE, ChurnModel, PropensityModel, load_saved_model

from .synthetic import TINY, make_snapshot

FEATURES = [
    "recency_days",
    "interpurchase_mean_days",
    "orders_lifetime",
    "complaints_90d",
    "city_tier",
]


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    train = make_snapshot(pd.Timestamp("2024-01-01"), 400, seed=1)
    cal = make_snapshot(pd.Timestamp("2024-04-01"), 300, seed=2)
    return train[FEATURES], train["churned"].to_numpy(), cal[FEATURES], cal["churned"].to_numpy()


def test_init_only_stores_parameters() -> None:
    model = ChurnModel(n_estimators=7, calibration="sigmoid")
    assert model.get_params()["n_estimators"] == 7
    assert not [k for k in vars(model) if k.endswith("_")]
    assert clone(model).get_params() == model.get_params()


def test_fit_returns_self_and_sets_fitted_attributes(data) -> None:
    X, y, X_cal, y_cal = data
    model = ChurnModel(**TINY)
    assert model.fit(X, y, calibration=(X_cal, y_cal)) is model
    assert model.n_features_in_ == len(FEATURES)
    assert model.feature_names_in_.tolist() == FEATURES
    assert model.categories_ == {"city_tier": ["1", "2", "3"]}
    numeric = [c for c in FEATURES if c != "city_tier"]
    assert model.feature_means_ == pytest.approx(X[numeric].mean().to_dict())
    assert model.calibrator_ is not None
    proba = model.predict_proba(X_cal)
    assert proba.shape == (len(X_cal), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(model.predict(X_cal))) <= {0, 1}


def test_keeps_no_training_data(data) -> None:
    X, y, X_cal, y_cal = data
    model = ChurnModel(**TINY).fit(X, y, calibration=(X_cal, y_cal))
    for name, value in vars(model).items():
        assert not isinstance(value, pd.DataFrame | pd.Series), name
        assert not (isinstance(value, np.ndarray) and len(value) in (len(X), len(X_cal))), name


def test_predict_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        ChurnModel().predict_proba(pd.DataFrame({"a": [1.0]}))


def test_same_seed_same_model(data) -> None:
    X, y, X_cal, y_cal = data
    a = PropensityModel(**TINY).fit(X, 1 - y, calibration=(X_cal, 1 - y_cal))
    b = PropensityModel(**TINY).fit(X, 1 - y, calibration=(X_cal, 1 - y_cal))
    np.testing.assert_array_equal(a.predict_proba(X_cal), b.predict_proba(X_cal))


def test_missing_feature_is_a_value_error(data) -> None:
    X, y, _, _ = data
    model = ChurnModel(**TINY, calibration="none").fit(X, y)
    with pytest.raises(ValidationError, match="missing: complaints_90d") as info:
        model.predict_proba(X.drop(columns="complaints_90d"))
    assert isinstance(info.value, ValueError) and isinstance(info.value, CrmMlError)


def test_bad_labels_are_refused(data) -> None:
    X = data[0]
    with pytest.raises(ValidationError, match="single class"):
        ChurnModel(**TINY).fit(X, np.zeros(len(X)))
    with pytest.raises(ValidationError, match="0/1"):
        ChurnModel(**TINY).fit(X, np.full(len(X), 2))


def test_str_categories_and_unseen_values(data) -> None:
    X, y, X_cal, _ = data
    X_text = X.astype({"city_tier": "str"})
    model = ChurnModel(**TINY, calibration="none").fit(X_text, y)
    unseen = X_cal.head(3).astype({"city_tier": "str"})
    unseen.loc[unseen.index[0], "city_tier"] = "9"
    assert np.isfinite(model.predict_proba(unseen)).all()


def test_uncalibrated_fit_logs_a_warning(data, caplog) -> None:
    X, y, _, _ = data
    model = ChurnModel(**TINY).fit(X, y)
    assert model.calibrator_ is None
    assert "uncalibrated" in caplog.text


def test_contributions_sum_to_log_odds(data) -> None:
    X, y, X_cal, _ = data
    model = ChurnModel(**TINY, calibration="none").fit(X, y)
    contrib = model.contributions(X_cal.head(20))
    assert contrib.columns.tolist() == [*FEATURES, "bias"]
    raw = model.predict_uncalibrated(X_cal.head(20))
    np.testing.assert_allclose(1 / (1 + np.exp(-contrib.sum(axis=1))), raw, rtol=1e-6)


@pytest.mark.parametrize("method", ["shap", "path"])
def test_explain_proba_gives_the_calibrated_probability(data, method) -> None:
    X, y, X_cal, y_cal = data
    model = ChurnModel(**TINY).fit(X, y, calibration=(X_cal, y_cal))
    p, contrib = model.explain_proba(X_cal, method=method)
    np.testing.assert_allclose(p, model.predict_proba(X_cal)[:, 1], rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(contrib, model.contributions(X_cal, method=method))


def test_save_and_load_round_trip(data, tmp_path) -> None:
    X, y, X_cal, y_cal = data
    model = ChurnModel(**TINY).fit(X, y, calibration=(X_cal, y_cal))
    model.save(tmp_path / "m")
    loaded = load_saved_model(tmp_path / "m")
    assert type(loaded) is ChurnModel
    np.testing.assert_allclose(loaded.predict_proba(X_cal), model.predict_proba(X_cal))
    np.testing.assert_allclose(loaded.contributions(X_cal), model.contributions(X_cal))
    assert loaded.feature_means_ == model.feature_means_


def test_a_model_saved_before_it_kept_its_means_loads_without_them(data, tmp_path) -> None:
    X, y, X_cal, y_cal = data
    ChurnModel(**TINY).fit(X, y, calibration=(X_cal, y_cal)).save(tmp_path / "m")
    schema = tmp_path / "m" / SCHEMA_FILE
    saved = json.loads(schema.read_text(encoding="utf-8"))
    del saved["feature_means"]
    schema.write_text(json.dumps(saved), encoding="utf-8")
    assert load_saved_model(tmp_path / "m").feature_means_ == {}


def test_path_contributions_are_additive_and_agree_with_shap(data) -> None:
    X, y, X_cal, _ = data
    model = ChurnModel(**TINY, calibration="none").fit(X, y)
    shap = model.contributions(X_cal)
    path = model.contributions(X_cal, method="path")
    assert path.columns.equals(shap.columns)
    np.testing.assert_allclose(path.sum(axis=1), shap.sum(axis=1), rtol=1e-6, atol=1e-9)
    # The strongest driver usually agrees with exact SHAP.
    features = shap.drop(columns="bias")
    agree = features.idxmax(axis=1) == path.drop(columns="bias").idxmax(axis=1)
    assert agree.mean() > 0.6
    with pytest.raises(ValidationError, match="method"):
        model.contributions(X_cal, method="lime")
