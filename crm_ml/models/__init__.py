"""Churn and propensity models: estimators, backtests, baselines, reasons, scoring.

MLflow is imported only by :mod:`crm_ml.models.tracking`, and only when a
function that needs it runs (training with ``register=True``, scoring from
the registry); importing this package does not import MLflow.
"""

from crm_ml.models.baselines import BetaGeoBaseline, RecencyRule, RFMScore
from crm_ml.models.beta_geo import BetaGeoModel, rfm_summary
from crm_ml.models.calibration import ProbabilityCalibrator
from crm_ml.models.estimators import BoostedClassifier, ChurnModel, PropensityModel
from crm_ml.models.evaluation import BacktestResult, backtest
from crm_ml.models.reasons import explain, reasons_frame, reasons_json
from crm_ml.models.scoring import read_scores, risk_band, score_customers
from crm_ml.models.training import TrainingResult, train_model

__all__ = [
    "BacktestResult",
    "BetaGeoBaseline",
    "BetaGeoModel",
    "BoostedClassifier",
    "ChurnModel",
    "ProbabilityCalibrator",
    "PropensityModel",
    "RFMScore",
    "RecencyRule",
    "TrainingResult",
    "backtest",
    "explain",
    "read_scores",
    "reasons_frame",
    "reasons_json",
    "rfm_summary",
    "risk_band",
    "score_customers",
    "train_model",
]
