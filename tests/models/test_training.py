from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.estimators import ChurnModel, PropensityModel
from crm_ml.models.training import train_model, training_set_label

from .synthetic import SNAPSHOTS, TINY, make_training_frame


def training_set(label: str) -> SimpleNamespace:
    """Shaped like crm_ml.features.TrainingSet: indexed frame, bool ``label``."""
    raw = make_training_frame(n=300)
    column = "churned" if label == "churn" else "purchased"
    frame = raw.drop(columns=["churned", "purchased"]).assign(label=raw[column].astype(bool))
    return SimpleNamespace(
        frame=frame.set_index(["as_of", "customer_id"]), label=label, horizon_days=90
    )


def test_trains_from_a_training_set_without_registering() -> None:
    result = train_model("churn", training_set("churn"), None, model_params=TINY, register=False)
    assert isinstance(result.model, ChurnModel)
    assert result.label == "label"
    assert "label" not in result.features and "as_of" not in result.features
    assert result.backtest.split.test_as_of == SNAPSHOTS[-1]
    assert result.backtest.split.horizon_days == 90
    assert result.registered is None
    # Re-fitted for use: calibrated on the latest snapshot, trees on the others.
    assert result.model is not result.backtest.model


def test_propensity_needs_a_purchase_training_set() -> None:
    with pytest.raises(ValidationError, match="labelled 'purchase', got 'churn'"):
        train_model("propensity", training_set("churn"), None, register=False)
    result = train_model(
        "propensity", training_set("purchase"), None, model_params=TINY, register=False, refit=False
    )
    assert isinstance(result.model, PropensityModel)
    assert result.model is result.backtest.model
    assert result.backtest.metrics.index.tolist()[0] == "model"


def test_plain_frames_need_a_horizon_and_a_label() -> None:
    frame = make_training_frame(n=100)
    with pytest.raises(ValidationError, match="horizon_days"):
        train_model("churn", frame, None, register=False)
    with pytest.raises(ValidationError, match="no label column 'gone'"):
        train_model("churn", frame, None, horizon_days=90, label="gone", register=False)
    with pytest.raises(ValidationError, match="Unknown model kind"):
        train_model("upsell", frame, None, horizon_days=90, register=False)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs settings"):
        train_model("churn", frame, None, horizon_days=90, model_params=TINY)


def test_frame_with_index_levels_is_accepted() -> None:
    frame = make_training_frame(n=200).set_index(["as_of", "customer_id"])
    result = train_model("churn", frame, None, horizon_days=90, model_params=TINY, register=False)
    assert result.backtest.metrics.loc["model", "customers"] == 200
    assert isinstance(result.backtest.predictions["customer_id"].iloc[0], str)
    assert pd.api.types.is_float_dtype(result.backtest.predictions["model"])


def test_progress_bar_names_the_steps(capsys) -> None:
    train_model(
        "churn", training_set("churn"), None, model_params=TINY, register=False, progress=True
    )
    bar = capsys.readouterr().err
    assert "training churn" in bar and "2/2" in bar and "re-fit" in bar


def test_a_misspelt_kind_fails_before_any_work_with_the_closest_kind() -> None:
    with pytest.raises(
        ValidationError, match=r"Unknown model kind 'chrun'; .* Did you mean 'churn'\?"
    ):
        train_model("chrun", None, None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"Did you mean 'propensity'\?"):
        training_set_label("propensty")
    assert training_set_label("propensity") == "purchase"


def test_training_data_must_be_a_training_set_or_a_frame() -> None:
    with pytest.raises(ValidationError, match=r"TrainingSet .* or a DataFrame .*, got NoneType"):
        train_model("churn", None, None, register=False)


def test_a_training_sets_frame_trains_on_its_own() -> None:
    # TrainingSet.frame saved and read back (e.g. from Parquet): a plain frame whose
    # "label" column must not be taken for the TrainingSet's label attribute.
    frame = training_set("churn").frame
    result = train_model("churn", frame, None, horizon_days=90, model_params=TINY, register=False)
    assert result.label == "label" and result.target == "churn"


def test_features_without_information_are_warned_about(caplog) -> None:
    frame = make_training_frame(n=300).assign(points_expiring_30d=0)
    with caplog.at_level("WARNING", logger="crm_ml.models.training"):
        result = train_model(
            "churn", frame, None, horizon_days=90, model_params=TINY, register=False
        )
    assert "Features without information: 1 feature(s) hold the same value" in caplog.text
    assert any("points_expiring_30d (always 0)" in w for w in result.warnings)


def test_the_training_fingerprint_follows_the_data_not_its_order() -> None:
    from crm_ml.models.training import training_fingerprint

    frame = make_training_frame(n=200)
    columns = ["churned", "recency_days"]
    same = training_fingerprint(frame, columns)
    assert training_fingerprint(frame.sample(frac=1.0, random_state=1), columns) == same
    assert training_fingerprint(frame.iloc[1:], columns) != same  # one row left out
    flipped = frame.assign(churned=frame["churned"].where(frame.index != 5, 1 - frame["churned"]))
    assert training_fingerprint(flipped, columns) != same  # one label changed
    assert training_fingerprint(frame, ["churned"]) != same  # a feature dropped
