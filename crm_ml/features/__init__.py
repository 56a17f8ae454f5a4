"""Point-in-time customer features, labels and training sets.

Features are Ibis expressions over the store's tables that run unchanged on
DuckDB, SQLite and PostgreSQL, or on Spark over the exported tables (pass
:func:`crm_ml.spark.spark_tables` where a store is expected), using only rows
dated strictly before ``as_of``; labels look at ``[as_of, as_of + horizon)``.
"""

from crm_ml.features.build import build_feature_file, customer_features, features_as_of
from crm_ml.features.catalog import GROUP_NAMES, catalog, catalog_markdown, feature_list
from crm_ml.features.labels import (
    check_label_window,
    churn_labels,
    churn_sensitivity,
    last_order_at,
    purchase_labels,
    tier_downgrade_labels,
)
from crm_ml.features.span import check_as_of, data_span, default_as_of
from crm_ml.features.spec import Feature, FeatureWindows
from crm_ml.features.training import TrainingSet, training_frame

__all__ = [
    "GROUP_NAMES",
    "Feature",
    "FeatureWindows",
    "TrainingSet",
    "build_feature_file",
    "catalog",
    "catalog_markdown",
    "check_as_of",
    "check_label_window",
    "churn_labels",
    "churn_sensitivity",
    "customer_features",
    "data_span",
    "default_as_of",
    "feature_list",
    "features_as_of",
    "last_order_at",
    "purchase_labels",
    "tier_downgrade_labels",
    "training_frame",
]
