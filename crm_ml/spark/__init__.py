"""Scale-out on Apache Spark: the same feature and label definitions, and batch scoring.

Importing this package does not import pyspark; the functions do, and say how
to install it (``pip install 'crm_ml[spark]'``, Java 17) when it is missing.

>>> from crm_ml.spark import export_tables, spark_session, spark_tables  # doctest: +SKIP
>>> export_tables(store, "/shared/crm_parquet")                          # once, or a catalog
>>> spark = spark_session("local[*]")                                    # or the notebook's own
>>> tables = spark_tables(spark, "/shared/crm_parquet")
>>> features = customer_features(tables, "2025-01-01")                   # collected, as on DuckDB
>>> big = spark_features(tables, "2025-01-01")                           # stays on Spark
>>> score_on_spark(spark, big, "crm-churn@champion", settings, out_path="/shared/scores")
>>> load_spark_scores(store, "/shared/scores", as_of="2025-01-01")      # into the score table
"""

from crm_ml.spark.features import collect_features, spark_features
from crm_ml.spark.loading import load_spark_scores
from crm_ml.spark.scoring import ReasonOptions, score_on_spark
from crm_ml.spark.session import (
    SPARK_TABLES,
    export_tables,
    session_conf,
    spark_session,
    spark_tables,
    table_schema,
)

__all__ = [
    "SPARK_TABLES",
    "ReasonOptions",
    "collect_features",
    "export_tables",
    "load_spark_scores",
    "score_on_spark",
    "session_conf",
    "spark_features",
    "spark_session",
    "spark_tables",
    "table_schema",
]
