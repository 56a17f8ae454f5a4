"""Customer features computed on Spark and kept there, for tables too large to collect.

:func:`crm_ml.features.customer_features` also runs on Spark (pass it
:func:`~crm_ml.spark.session.spark_tables`), but it brings each query's rows
back to this machine. :func:`spark_features` builds the same features as one
Spark DataFrame that never leaves the cluster: write it to Parquet, or hand it
to :func:`~crm_ml.spark.scoring.score_on_spark`. Both use the same Ibis
definitions; :func:`collect_features` turns a (sampled) Spark result into the
frame ``customer_features`` returns, for training on one machine.

The features carry their date: :func:`spark_features` adds an ``as_of``
column (its Spark metadata holds the date too, so it is read without computing
anything), which a Parquet round trip through Spark keeps. ``score_on_spark``
refuses to date scores otherwise, and :func:`collect_features` puts it back in
``attrs["as_of"]`` as ``customer_features`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pandas as pd

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features.backend import TableSource, open_tables
from crm_ml.features.build import DEFAULT_WINDOWS, conform, feature_query
from crm_ml.features.catalog import feature_list, select_groups
from crm_ml.features.identity import open_snapshot
from crm_ml.features.span import check_as_of
from crm_ml.features.spec import FeatureWindows, as_timestamp

log = logging.getLogger(__name__)

#: Column holding the date the features were built for (naive UTC), after the features.
AS_OF_COLUMN = "as_of"

#: Key of the ``as_of`` column's Spark metadata holding that date as ISO text.
AS_OF_METADATA = "crm_ml.as_of"


def spark_features(
    tables: TableSource,
    as_of: datetime | date | str,
    *,
    groups: Iterable[str] | None = None,
    windows: FeatureWindows = DEFAULT_WINDOWS,
    allow_outside_data: bool = False,
) -> Any:
    """Every customer's features at ``as_of`` as a lazy Spark DataFrame (nothing is collected).

    ``as_of`` is checked against the data first, as ``customer_features`` checks
    it, with the same message: two small aggregates on Spark, and a date past the
    data would otherwise score everyone as lapsed without a word.

    Parameters
    ----------
    tables : Ibis PySpark backend
        From :func:`~crm_ml.spark.session.spark_tables`.
    as_of, groups, windows, allow_outside_data
        As in :func:`crm_ml.features.customer_features`.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per customer who exists at ``as_of``: ``customer_id`` (string),
        then one column per feature in catalog order, filled as declared:
        ``bigint``, ``double`` (NULL where undefined), ``boolean``, or the
        category as ``string``; last, ``as_of`` (``timestamp_ntz``, the same on
        every row, its date also in the column's metadata). Unordered; Spark
        computes it when it is used. Customers erased on request are rows too
        (profile blanked), as in ``customer_features``; scoring leaves them out.

    Raises
    ------
    ValidationError
        If ``as_of`` is before the data starts or more than
        :data:`~crm_ml.features.span.MAX_DAYS_AFTER_DATA` days after its last
        order (unless ``allow_outside_data``).
    ConfigError
        If ``as_of`` is not a date, or ``tables`` are not on Spark.
    """
    cutoff = _checked_as_of(tables, as_of, allow_outside_data)
    selected = select_groups(groups)
    with (
        open_tables(tables) as (con, dialect),
        open_snapshot(con, dialect, cutoff, windows) as snap,
    ):
        # Spark resolves the views now: the frame outlives the snapshot's cached merge map.
        frame = con.raw_sql(con.compile(feature_query(snap, selected)))
    log.info("Planned %d feature groups on Spark at %s", len(selected), cutoff)
    return with_features_date(frame, cutoff)


def _checked_as_of(tables: TableSource, as_of: Any, allow_outside_data: bool) -> datetime:
    """Return ``as_of`` once the tables are known to be Spark's and their data to cover it."""
    with open_tables(tables) as (_con, dialect):
        if dialect != "pyspark":
            raise ConfigError(
                f"spark_features needs Spark tables (crm_ml.spark.spark_tables); got a {dialect} "
                "source. Use crm_ml.features.customer_features for other engines."
            )
    return as_timestamp(as_of) if allow_outside_data else check_as_of(tables, as_of)


def with_features_date(frame: Any, as_of: datetime) -> Any:
    """Add the ``as_of`` column to a Spark features frame, its date also in the metadata.

    The metadata lets :func:`features_date` read the date from the schema alone;
    the column keeps it where metadata is lost (a frame rebuilt in pandas).
    """
    from pyspark.sql import functions as F

    # Text cast to TIMESTAMP_NTZ: no time zone conversion on the way (as the scores' as_of).
    stamp = F.lit(as_of.isoformat(sep=" ")).cast("timestamp_ntz")
    metadata = {AS_OF_METADATA: as_of.isoformat()}
    return frame.withColumn(AS_OF_COLUMN, stamp).withMetadata(AS_OF_COLUMN, metadata)


def features_date(frame: Any) -> datetime | None:
    """Return the date a Spark features frame was built for, or None when it does not say.

    Read from the ``as_of`` column's metadata (free), else from its values (a
    scan of one column: cheap on Parquet).

    Raises
    ------
    ValidationError
        If the ``as_of`` column holds more than one date.
    """
    if AS_OF_COLUMN not in frame.columns:
        return None
    noted = frame.schema[AS_OF_COLUMN].metadata.get(AS_OF_METADATA)
    if noted is not None:
        return as_timestamp(noted, what=f"the {AS_OF_COLUMN} column's metadata")
    return _single_date(frame)


def _single_date(frame: Any) -> datetime | None:
    """Return the one date in the ``as_of`` column (None when empty); refuse several."""
    from pyspark.sql import functions as F

    column = F.col(AS_OF_COLUMN)
    low, high = frame.agg(F.min(column), F.max(column)).first()
    if low is None:
        return None
    if low != high:
        raise ValidationError(
            f"The features hold several dates in their {AS_OF_COLUMN} column "
            f"({low:%Y-%m-%d} to {high:%Y-%m-%d}): score one date at a time, "
            f"e.g. features.filter(\"{AS_OF_COLUMN} = '{high:%Y-%m-%d}'\")."
        )
    return as_timestamp(low, what=f"the {AS_OF_COLUMN} column")


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
        Rows of :func:`spark_features`, or a tenth of them, the same on every run:
        ``spark_features(...).filter("pmod(xxhash64(customer_id), 10) = 0")``,
        or the same columns read back from Parquet.
    groups, windows
        Those the features were built with.

    Returns
    -------
    pandas.DataFrame
        As :func:`crm_ml.features.customer_features`: indexed by ``customer_id``
        (sorted), one column per feature of its declared dtype; ``attrs["as_of"]``
        holds the date of the rows' ``as_of`` column when they all share one.
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
    built = _rows_date(rows)
    if built is not None:
        out.attrs["as_of"] = built.isoformat()  # as customer_features: ISO text
    return out


def _rows_date(rows: pd.DataFrame) -> datetime | None:
    """Return the one date of the rows' ``as_of`` column; None without it or with several."""
    if AS_OF_COLUMN not in rows.columns:
        return None
    dates = rows[AS_OF_COLUMN].dropna().unique()
    return as_timestamp(dates[0], what=AS_OF_COLUMN) if len(dates) == 1 else None
