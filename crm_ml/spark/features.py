"""Customer features computed on Spark and kept there, for tables too large to collect.

:func:`crm_ml.features.customer_features` also runs on Spark (pass it
:func:`~crm_ml.spark.session.spark_tables`), but it brings each query's rows
back to this machine. :func:`spark_features` builds the same features as one
Spark DataFrame that never leaves the cluster: write it to Parquet, or hand it
to :func:`~crm_ml.spark.scoring.score_on_spark`. Both use the same Ibis
definitions; :func:`collect_features` turns a (sampled) Spark result into the
frame ``customer_features`` returns, for training on one machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pandas as pd

from crm_ml.errors import ConfigError
from crm_ml.features.backend import TableSource, open_tables
from crm_ml.features.build import DEFAULT_WINDOWS, conform, feature_query
from crm_ml.features.catalog import feature_list, select_groups
from crm_ml.features.identity import open_snapshot
from crm_ml.features.spec import FeatureWindows, as_timestamp

log = logging.getLogger(__name__)


def spark_features(
    tables: TableSource,
    as_of: datetime | date | str,
    *,
    groups: Iterable[str] | None = None,
    windows: FeatureWindows = DEFAULT_WINDOWS,
) -> Any:
    """Every customer's features at ``as_of`` as a lazy Spark DataFrame (nothing is collected).

    Parameters
    ----------
    tables : Ibis PySpark backend
        From :func:`~crm_ml.spark.session.spark_tables`.
    as_of, groups, windows
        As in :func:`crm_ml.features.customer_features`.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per customer who exists at ``as_of``: ``customer_id`` (string),
        then one column per feature in catalog order, filled as declared:
        ``bigint``, ``double`` (NULL where undefined), ``boolean``, or the
        category as ``string``. Unordered; Spark computes it when it is used.
    """
    cutoff = as_timestamp(as_of)
    selected = select_groups(groups)
    with open_tables(tables) as (con, dialect):
        if dialect != "pyspark":
            raise ConfigError(
                f"spark_features needs Spark tables (crm_ml.spark.spark_tables); got a {dialect} "
                "source. Use crm_ml.features.customer_features for other engines."
            )
        with open_snapshot(con, dialect, cutoff, windows) as snap:
            # Spark resolves the views now: the frame outlives the snapshot's cached merge map.
            frame = con.raw_sql(con.compile(feature_query(snap, selected)))
    log.info("Planned %d feature groups on Spark at %s", len(selected), cutoff)
    return frame


def collect_features(
    frame: Any,
    *,
    groups: Iterable[str] | None = None,
    windows: FeatureWindows = DEFAULT_WINDOWS,
) -> pd.DataFrame:
    """Bring a :func:`spark_features` result (or a sample of it) to pandas, typed as declared.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame or pandas.DataFrame
        Rows of :func:`spark_features`, e.g. ``spark_features(...).sample(0.1, seed=1)``,
        or the same columns read back from Parquet.
    groups, windows
        Those the features were built with.

    Returns
    -------
    pandas.DataFrame
        As :func:`crm_ml.features.customer_features`: indexed by ``customer_id``
        (sorted), one column per feature of its declared dtype.
    """
    rows = frame if isinstance(frame, pd.DataFrame) else frame.toPandas()
    if "customer_id" not in rows.columns:
        raise ConfigError(
            f"The feature rows have no customer_id column (found {list(rows.columns)[:8]}...); "
            "pass the output of crm_ml.spark.spark_features."
        )
    keyed = rows.set_index(rows["customer_id"].astype("str")).drop(columns="customer_id")
    out = conform(keyed, feature_list(groups, windows=windows)).sort_index()
    out.index.name = "customer_id"
    return out
