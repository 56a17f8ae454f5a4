"""The input example logged with a model: no customer's row, and the signature real rows give.

A registered model travels with its artifacts; its input example used to be the
first five customers of the training frame (the compliance review's F12).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.models.training import train_model

from .synthetic import TINY, make_training_frame

mlflow = pytest.importorskip("mlflow")


def test_the_example_is_one_row_of_medians_and_most_common_values() -> None:
    from crm_ml.models.tracking import _signature_example

    features = pd.DataFrame(
        {
            "recency_days": [10.0, np.nan, 30.0, 400.0],
            "orders_lifetime": np.array([1, 2, 4, 10], dtype="int64"),
            "has_owner": [True, False, True, True],
            "city_tier": pd.Categorical(["2", "1", "2", None]),
            "customer_note": ["不用", "不用", "不用", "不用"],
        }
    )
    model = SimpleNamespace(
        feature_names_in_=np.array(["recency_days", "orders_lifetime", "has_owner", "city_tier"]),
        categories_={"city_tier": ["1", "2"]},
    )

    example = _signature_example(model, features)

    assert example.to_dict("records") == [
        {"recency_days": 30.0, "orders_lifetime": 3, "has_owner": True, "city_tier": "2"}
    ]
    assert example.dtypes.astype(str).to_dict() == {
        "recency_days": "float64",
        "orders_lifetime": "int64",
        "has_owner": "bool",
        "city_tier": "object",
    }


def test_a_column_no_row_gives_stays_missing() -> None:
    from crm_ml.models.tracking import _signature_example

    features = pd.DataFrame(
        {"recency_days": [np.nan, np.nan], "city_tier": pd.Categorical([None, None], ["1"])}
    )
    model = SimpleNamespace(
        feature_names_in_=np.array(["recency_days", "city_tier"]), categories_={"city_tier": ["1"]}
    )

    example = _signature_example(model, features)

    assert len(example) == 1
    assert np.isnan(example.loc[0, "recency_days"]) and example.loc[0, "city_tier"] is None


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory):
    frame = make_training_frame(n=300)
    # Customers with one order have no usual interval, as customer_features leaves it.
    frame.loc[[1, 700], "interpurchase_mean_days"] = np.nan
    settings = project_settings(tmp_path_factory.mktemp("project"))
    result = train_model("churn", frame, settings, horizon_days=90, model_params=TINY)
    return frame, result


def test_the_logged_model_keeps_no_customer_row_and_the_signature_real_rows_give(registered):
    from crm_ml.models.tracking import _model_signature

    frame, result = registered
    model = result.model
    features = frame[list(model.feature_names_in_)]
    real_rows = features.head(5).astype({"city_tier": object}).reset_index(drop=True)
    pyfunc = mlflow.pyfunc.load_model(f"models:/crm-churn/{result.registered.version}")

    example = pyfunc.input_example

    assert len(example) == 1
    assert not (features.astype({"city_tier": object}) == example.iloc[0]).all(axis=1).any()
    assert example.loc[0, "interpurchase_mean_days"] == features["interpurchase_mean_days"].median()
    assert pyfunc.metadata.get_input_schema() == _model_signature(model, real_rows).inputs
    out = pyfunc.predict(example)
    np.testing.assert_allclose(out["probability"], model.predict_proba(example)[:, 1])
