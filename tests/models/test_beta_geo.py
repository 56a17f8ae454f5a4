from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_ml.errors import ValidationError
from crm_ml.models.beta_geo import BetaGeoModel, rfm_summary, simulate_beta_geo

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def test_rfm_summary_by_hand() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c"],
            # Two purchases on 01-08 are one transaction; 10-02 is after the calibration end.
            "date": pd.to_datetime(
                [
                    "1997-01-01",
                    "1997-01-08 10:00",
                    "1997-01-08 17:00",
                    "1997-10-02",
                    "1997-09-02",
                    "1997-10-05",
                ],
                format="ISO8601",
            ),
        }
    )
    rfm = rfm_summary(tx, "1997-09-30")
    assert rfm.index.tolist() == ["a", "b"]
    assert rfm.loc["a"].tolist() == pytest.approx([1.0, 1.0, 272 / 7])
    assert rfm.loc["b"].tolist() == pytest.approx([0.0, 0.0, 4.0])
    days = rfm_summary(tx, "1997-09-30", freq="D")
    assert days.loc["a", "T"] == 272


def test_rfm_summary_errors() -> None:
    with pytest.raises(ValidationError, match="missing column"):
        rfm_summary(pd.DataFrame({"id": [1]}), "1997-09-30")
    with pytest.raises(ValidationError, match="freq"):
        rfm_summary(
            pd.DataFrame({"customer_id": [1], "date": ["1997-01-01"]}), "1997-09-30", freq="M"
        )


def test_recovers_parameters_from_simulated_data() -> None:
    truth = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    T = np.random.default_rng(1).uniform(26, 52, 8000)
    fitted = BetaGeoModel().fit(simulate_beta_geo(truth, T, seed=7)).params_
    # The purchase-rate parameters are well identified; the dropout pair less so.
    assert fitted["r"] == pytest.approx(truth["r"], rel=0.15)
    assert fitted["alpha"] == pytest.approx(truth["alpha"], rel=0.15)
    assert fitted["a"] == pytest.approx(truth["a"], rel=0.3)
    assert fitted["b"] == pytest.approx(truth["b"], rel=0.3)
    mean_dropout = fitted["a"] / (fitted["a"] + fitted["b"])
    assert mean_dropout == pytest.approx(truth["a"] / (truth["a"] + truth["b"]), rel=0.1)


def test_predictions_match_the_paper() -> None:
    # Fader, Hardie & Lee (2005): x=2, t_x=30.43, T=38.86 expects 1.226 purchases in 39 weeks.
    model = BetaGeoModel()
    model.params_ = dict(PUBLISHED)
    one = pd.DataFrame({"frequency": [2.0], "recency": [30.43], "T": [38.86]})
    assert model.expected_purchases(39, one)[0] == pytest.approx(1.226, abs=0.002)
    p_alive = model.probability_alive(one)[0]
    p_buy = model.probability_of_purchase(39, one)[0]
    assert 0 < p_buy < p_alive < 1
    new = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [38.86]})
    assert model.probability_alive(new)[0] == 1.0


def test_invalid_rfm_rows_are_refused() -> None:
    bad = pd.DataFrame({"frequency": [1.0], "recency": [5.0], "T": [3.0]})
    with pytest.raises(ValidationError, match="recency <= T"):
        BetaGeoModel().fit(bad)
    with pytest.raises(ValidationError, match="not fitted"):
        BetaGeoModel().probability_alive(bad)


def read_cdnow_sample(folder: Path) -> pd.DataFrame:
    return pd.read_csv(
        folder / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "cds", "dollars"],
        dtype={"customer_id": str, "sample_id": str, "date": str},
    ).assign(date=lambda f: pd.to_datetime(f["date"], format="%Y%m%d"))


@pytest.mark.cdnow
def test_reproduces_the_published_cdnow_fit(cdnow_dir: Path) -> None:
    tx = read_cdnow_sample(cdnow_dir)
    rfm = rfm_summary(tx, "1997-09-30", freq="W")
    assert len(rfm) == 2357
    assert rfm["frequency"].sum() == 2457  # repeat transactions in the calibration period
    model = BetaGeoModel().fit(rfm)
    for name, value in PUBLISHED.items():
        assert model.params_[name] == pytest.approx(value, abs=0.001), name
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
