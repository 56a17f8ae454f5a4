"""Batch scoring on Spark: the registered model as a Spark UDF, reasons in pandas UDFs.

``score_on_spark(session, features, "crm-churn@champion", settings, out_path=...)``
resolves the alias to one version, scores probabilities with
:func:`mlflow.pyfunc.spark_udf` (``env_manager="local"``: the executors use
this Python environment, nothing is installed at run time), then bands and
phrases reasons per Arrow batch with :func:`mapInPandas
<pyspark.sql.DataFrame.mapInPandas>` calling the same code as
:func:`crm_ml.models.scoring.score_customers`. Scores are written to Parquet;
nothing but the per-band summary comes back to the driver. ``store=`` also
loads them into the store's ``score`` table (:mod:`crm_ml.spark.loading`).

The reasons are those ``score_customers`` writes for the same store, model and
``as_of``: in ``settings.language`` (``CRM_ML_LANGUAGE``) unless
:class:`ReasonOptions` says otherwise, naming tiers as the store's ``tier``
table does (the Chinese label in ``zh``). Without the tier names a reason says
"当前等级2" where the single machine says "当前等级金卡", so they are read from
``store=`` when given, else from the ``tier`` table the session holds (the view
:func:`~crm_ml.spark.session.spark_tables` registers).

Customers erased on request are left out before scoring, as ``score_customers``
leaves them out: their ids are read from ``store=`` when given (the list as it
is now), else from the session's ``erased_customer`` table (which
``spark_tables`` registers), which is the list as it was when the tables were
exported: a customer erased since then is scored into ``out_path``. Pass
``store=`` whenever the driver can reach the store. Without either, a warning
says they could not be told apart; ``load_spark_scores`` still keeps their
scores out of the store, reading the store's current list.

Scores are dated by the features: ``as_of`` defaults to the date the features
carry (the ``as_of`` column of :func:`~crm_ml.spark.features.spark_features`,
or the ``attrs`` of a ``build_feature_file`` Parquet), and a different one is
refused before anything is loaded or written, as ``score_customers`` refuses it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features.spec import as_timestamp
from crm_ml.models.estimators import BoostedClassifier
from crm_ml.models.phrases import PhraseContext
from crm_ml.models.scoring import (
    BANDS,
    DEFAULT_BAND_THRESHOLDS,
    _reasons_language,
    day_text,
    risk_band,
)
from crm_ml.models.scoring_targets import scored_population, scoring_target
from crm_ml.spark.features import features_date
from crm_ml.spark.loading import load_spark_scores, pyarrow_name, pyarrow_problem
from crm_ml.spark.session import require_pyspark
from crm_ml.store import Store
from crm_ml.store.erased import erased_ids
from crm_ml.store.tiers import tier_names_from_rows, tier_names_from_store

log = logging.getLogger(__name__)

#: Columns of the written scores, as ``score_batches`` yields them plus the model.
SCORE_SCHEMA = (
    "customer_id string, probability double, band string, reasons string, "
    "model_name string, model_version string"
)

#: MLflow column types -> Spark SQL types, to cast features to the model's signature.
_SPARK_TYPES = {
    "boolean": "boolean",
    "integer": "int",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
}


@dataclass(frozen=True)
class ReasonOptions:
    """How scores are banded and explained (as in ``score_customers``).

    Attributes
    ----------
    band_thresholds : tuple of float
        ``(high, medium)``: ``high`` from the first, ``medium`` from the second.
    top_k : int
        Reasons per customer.
    language : str or None
        ``en`` or ``zh``; None (the default) is ``settings.language``
        (``CRM_ML_LANGUAGE``), as in ``score_customers``.
    attribution : {"shap", "path"}
        Exact TreeSHAP (the default, and no slower), or path attribution.
    reasons : bool
        False writes probabilities and bands only (``reasons`` empty).
    context : PhraseContext or None
        Currency and tier names for the phrases; when None, the currency of the
        settings and the store's tier names (see :func:`score_on_spark`).
    chunk_rows : int
        Rows explained per call in each task (Spark's Arrow batches are regrouped).
    """

    band_thresholds: tuple[float, float] = DEFAULT_BAND_THRESHOLDS
    top_k: int = 3
    language: str | None = None
    attribution: str = "shap"
    reasons: bool = True
    context: PhraseContext | None = None
    chunk_rows: int = 100_000


def _spark_frame(session: Any, features: Any) -> Any:
    """Return the features as a Spark DataFrame when given a Parquet path, else as given."""
    if isinstance(features, str | os.PathLike):
        return session.read.parquet(os.fspath(features))
    return features


def _checked_frame(frame: Any) -> Any:
    """Return ``frame`` once it is known to hold ``customer_id``."""
    if "customer_id" not in frame.columns:
        raise ValidationError(
            f"The features have no customer_id column (found {frame.columns[:8]}...). "
            "Pass crm_ml.spark.spark_features(...) or a build_feature_file Parquet."
        )
    return frame


def _file_date(features: Any) -> datetime | None:
    """Return the date a ``build_feature_file`` Parquet was built for, None if it does not say.

    pandas keeps ``attrs["as_of"]`` in the Parquet key-value metadata, which Spark
    does not read; pyarrow reads it where the driver sees the path (not ``s3a://``).
    """
    import pyarrow.dataset as ds

    if not isinstance(features, str | os.PathLike) or not Path(features).exists():
        return None
    try:
        metadata = ds.dataset(os.fspath(features), format="parquet").schema.metadata or {}
        built = json.loads(metadata.get(b"PANDAS_ATTRS", b"{}")).get("as_of")
    except (OSError, ValueError):  # pyarrow's errors derive from these
        return None
    return None if built is None else as_timestamp(built, what='the file\'s attrs["as_of"]')


def _scores_date(features: Any, frame: Any, as_of: datetime | None) -> datetime | None:
    """Return the date to stamp the scores with: ``as_of``, else the features' own date.

    Raises
    ------
    ValidationError
        If the features say they were built for another date than ``as_of``:
        scores of one date stamped with another look right and are wrong.
    """
    # Only a Spark frame has a schema to read; anything else is refused by _checked_frame.
    built = features_date(frame) if hasattr(frame, "schema") else None
    built = built or _file_date(features)
    if built is None or as_of is None or built == as_of:
        return as_of or built
    raise ValidationError(
        f"These features were built as of {day_text(built)} but are being scored as of "
        f"{day_text(as_of)}: the scores would describe customers at the wrong date. Build them "
        f"for that date (spark_features(tables, {day_text(as_of)!r})), or pass "
        f"as_of={day_text(built)!r} (or leave as_of out: it defaults to the features' date). "
        "Nothing was scored."
    )


def _check_readable_back(out_path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an ``out_path`` that ``store=`` could not read back on the driver.

    Raises
    ------
    ConfigError
        If pyarrow cannot open ``out_path`` here (``s3a://``, ``dbfs:/``...).
    """
    path = os.fspath(out_path)
    problem = pyarrow_problem(path)
    if problem is None:
        return
    other = pyarrow_name(path)
    later = (
        f"under pyarrow's name for that folder: load_spark_scores(store, {other!r}, as_of=...)"
        if other
        else "with load_spark_scores(store, <the folder as this machine sees it>, as_of=...)"
    )
    raise ConfigError(
        f"score_on_spark(store=...) loads the scores by reading out_path back on this machine "
        f"with pyarrow, which cannot open {path} ({problem}). Nothing was computed. Write them "
        "where Spark and this machine open the same name (a local folder, one mounted at the "
        "same path on every node, or a URI both know, such as s3:// on EMR or gs:// with the "
        f"connector), or leave store= out and load them afterwards, {later}."
    )


def _signature_columns(model_uri: str) -> dict[str, str]:
    """Return ``{column: Spark type}`` of the model's input signature."""
    from crm_ml.models.tracking import input_columns

    return {name: _SPARK_TYPES.get(kind, "string") for name, kind in input_columns(model_uri)}


def _model_inputs(frame: Any, columns: Mapping[str, str]) -> Any:
    """Select ``customer_id`` and the model's columns, cast to the signature's types.

    MLflow refuses e.g. ``bigint`` input for a ``double`` column, and a feature
    Parquet keeps categories as text: cast once here rather than fail per batch.
    """
    from pyspark.sql import functions as F

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{len(missing)} feature column(s) the model needs are missing: "
            f"{', '.join(missing[:10])}. Build features with the groups the model was trained on."
        )
    casts = [F.col(name).cast(kind).alias(name) for name, kind in columns.items()]
    return frame.select(F.col("customer_id").cast("string").alias("customer_id"), *casts)


def _chunks(batches: Iterator[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """Regroup Arrow batches (10,000 rows by default) into frames of at least ``rows`` rows.

    Reasons have a fixed cost per call (every tree is walked once per call),
    so they are computed on large chunks, as ``score_batches`` does.
    """
    pending: list[pd.DataFrame] = []
    size = 0
    for batch in batches:
        pending.append(batch)
        size += len(batch)
        if size >= rows:
            yield pd.concat(pending, ignore_index=True)
            pending, size = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True)


def _explained(
    model: BoostedClassifier, options: ReasonOptions, chunk: pd.DataFrame
) -> pd.DataFrame:
    """Score rows of one chunk: ``customer_id``, ``probability``, ``band``, ``reasons``."""
    from crm_ml.models.reasons import reasons_json

    X = chunk.set_index("customer_id").drop(columns="probability")
    p = chunk["probability"].to_numpy(dtype=float)
    reasons: Any = ""
    if options.reasons and len(X):
        contrib = model.contributions(X, method=options.attribution)
        reasons = reasons_json(
            contrib,
            X,
            top_k=options.top_k,
            language=options.language,
            context=options.context,
            probability=p,
            target=model.target,  # reasons worded for the way they push this model's score
        ).to_numpy()
    return pd.DataFrame(
        {
            "customer_id": X.index.to_numpy(),
            "probability": p,
            "band": risk_band(p, options.band_thresholds),
            "reasons": reasons,
        }
    )


def reason_batches(
    model: BoostedClassifier, options: ReasonOptions, labels: tuple[str, str]
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Return the ``mapInPandas`` function: band and reasons for each batch of scored rows.

    ``options`` as :func:`score_on_spark` completes them (language and context
    set). Each batch holds ``customer_id``, the features and ``probability``;
    the function yields the columns of :data:`SCORE_SCHEMA`.
    """
    from crm_ml.models.reasons import model_context

    name, version = labels
    options = replace(options, context=model_context(model, options.context))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in _chunks(batches, options.chunk_rows):
            yield _explained(model, options, chunk).assign(model_name=name, model_version=version)

    return score


def _session_tier_names(session: Any, language: str) -> dict[int, str] | None:
    """Tier level -> name from the session's ``tier`` table, or None when it has none."""
    if not session.catalog.tableExists("tier"):
        return None
    tier = session.table("tier")
    label = "label" if "label" in tier.columns else "name"
    rows = tier.select("level", "name", label).collect()
    return tier_names_from_rows(rows, language=language)


def _tier_names(session: Any, store: Store | None, language: str) -> dict[int, str]:
    """Return the tier names reasons use: the store's, else the session's ``tier`` table's.

    Without either, reasons give tier levels as numbers; that is logged, since
    the single machine would name them.
    """
    if store is not None:
        return tier_names_from_store(store, language=language)
    names = _session_tier_names(session, language)
    if names is None:
        log.warning(
            "No tier table on the Spark session and no store=: reasons give tier levels as "
            "numbers. Register the tables with spark_tables(), pass store= or tier_names=."
        )
        return {}
    return names


def _reason_options(
    session: Any,
    settings: Settings,
    options: ReasonOptions | None,
    tier_names: Mapping[int, str] | None,
    store: Store | None,
) -> ReasonOptions:
    """Fill in what ``options`` leaves open as ``score_customers`` would: language and context."""
    chosen = options or ReasonOptions()
    language = _reasons_language(chosen.language, settings)
    context = chosen.context
    if context is None and chosen.reasons:
        names = _tier_names(session, store, language) if tier_names is None else tier_names
        context = PhraseContext(currency=settings.currency, tier_names=dict(names))
    return replace(chosen, language=language, context=context)


def _summary(scores: Any) -> pd.DataFrame:
    """Per-band counts and mean probability, as ``score_customers`` returns them."""
    from pyspark.sql import functions as F

    rows = scores.groupBy("band").agg(
        F.count("*").alias("customers"), F.avg("probability").alias("mean_probability")
    )
    found = rows.toPandas().set_index("band")
    out = found.reindex(list(BANDS))
    out["customers"] = out["customers"].fillna(0).astype(int)
    return out


def _scored_population(frame: Any, model: BoostedClassifier) -> Any:
    """Keep the customers ``model`` scores, as ``score_customers`` does (churn: buyers only).

    Raises
    ------
    ValidationError
        If the features lack the column that tells who is in.
    """
    population = scored_population(model)
    if population is None:
        return frame
    if population.column not in frame.columns:
        raise ValidationError(
            f"A {population.score} model scores only customers with {population.condition}, "
            f"and the features have no {population.column} column. Build them with "
            "spark_features(...), which always has it."
        )
    log.info("%s model: scoring only customers with %s", population.score, population.condition)
    return frame.filter(population.condition)


def _erased_frame(session: Any, store: Store | None) -> Any | None:
    """Return the ids erased on request as a Spark DataFrame (``customer_id``), None if unknown.

    From ``store`` when given (the record itself, as it is now), else from the
    session's ``erased_customer`` table, which
    :func:`~crm_ml.spark.session.spark_tables` registers from an export: the
    list as it was at export time.
    """
    if store is not None:
        with store.connect() as conn:
            ids = erased_ids(conn)
        return session.createDataFrame([(c,) for c in ids], "customer_id string")
    if session.catalog.tableExists("erased_customer"):
        return session.table("erased_customer").selectExpr(
            "CAST(customer_id AS STRING) AS customer_id"
        )
    return None


def _not_erased(session: Any, inputs: Any, store: Store | None) -> Any:
    """Leave customers erased on request out of the model inputs (text ``customer_id``)."""
    erased = _erased_frame(session, store)
    if erased is None:
        log.warning(
            "Customers erased on request cannot be told apart: no store= and no erased_customer "
            "table on the Spark session, so any in the features are scored into out_path "
            "(load_spark_scores still keeps them out of the store). Pass store=, or register "
            "the tables with spark_tables() from an export_tables() folder."
        )
        return inputs
    # Counting who was left out would compute the features twice: say how many are known.
    known = erased.count()
    if store is not None:
        log.info(
            "Leaving out of the scores the %d customer record(s) erased on request "
            "(the store's current list)",
            known,
        )
    else:
        # The export's list misses later erasures, and out_path is often shared storage.
        log.warning(
            "Leaving out of the scores the %d customer record(s) erased on request as of the "
            "export (the session's erased_customer table): anyone erased since the export is "
            "scored into out_path, though load_spark_scores keeps them out of the store. "
            "Pass store= to use the store's current list.",
            known,
        )
    return inputs.join(erased.hint("broadcast"), on="customer_id", how="left_anti")


def score_on_spark(
    session: Any,
    features: Any,
    model_uri: str,
    settings: Settings,
    *,
    out_path: str | os.PathLike[str],
    as_of: datetime | date | str | None = None,
    options: ReasonOptions | None = None,
    tier_names: Mapping[int, str] | None = None,
    mode: str = "overwrite",
    store: Store | None = None,
) -> pd.DataFrame:
    """Score every customer in ``features`` on Spark and write the scores to Parquet.

    Customers erased on request are left out (see the module notes): known from
    ``store`` when given (its current list), else from the session's
    ``erased_customer`` table (the list at export time: later erasures are
    scored into ``out_path``, with a warning).

    ``as_of`` and the features' date are checked before the model is loaded, so
    a wrong date writes nothing. The date range itself is checked where the
    features are built (:func:`~crm_ml.spark.features.spark_features`, as
    ``customer_features``); features that carry no date (a Parquet without an
    ``as_of`` column or ``attrs``, or one pyarrow cannot open from the driver)
    are scored as of ``as_of`` unchecked, as ``score_customers`` scores them.

    Parameters
    ----------
    session : pyspark.sql.SparkSession
        The session that holds (or reads) the features.
    features : pyspark.sql.DataFrame or path
        :func:`~crm_ml.spark.features.spark_features` output, or a Parquet
        folder/file with ``customer_id`` and the model's feature columns
        (``build_feature_file`` writes one).
    model_uri : str
        ``crm-churn@champion``, ``crm-churn/3`` or a ``models:/`` URI; an alias
        is resolved once, so every row is scored by the same version.
    settings : Settings
        The MLflow store (``mlflow_tracking_uri``), the language and currency of reasons.
    out_path : path
        Parquet folder written by Spark: any path the cluster writes (``s3a://``,
        ``hdfs://``, ``dbfs:/``...). With ``store``, this machine also reads it
        back with pyarrow, so it must be a name pyarrow opens: a local or mounted
        path, or ``s3://``, ``gs://``, ``abfs://``, ``hdfs://`` (checked before
        anything is computed). Otherwise leave ``store`` out and call
        :func:`~crm_ml.spark.loading.load_spark_scores` with the folder as this
        machine names it (``s3://`` for ``s3a://``, ``/dbfs/...`` for ``dbfs:/...``).
    as_of : date, optional
        Stored in an ``as_of`` column. By default the date the features carry
        (none when they carry none); refused when it differs from it.
    options : ReasonOptions, optional
        Band thresholds, ``top_k``, language (default ``settings.language``),
        ``attribution``, or ``reasons=False`` for probabilities only.
    tier_names : mapping, optional
        Tier level -> name for reasons. By default the store's, as
        ``score_customers`` names them: from ``store`` when given, else from the
        ``tier`` table on ``session`` (registered by ``spark_tables``); without
        either, levels are given as numbers (and a warning logged).
    mode : str
        Spark's save mode: ``overwrite`` (default), ``error``...
    store : Store, optional
        Also load the written scores into this store's ``score`` table with
        :func:`~crm_ml.spark.loading.load_spark_scores` (needs a date, from
        ``as_of`` or the features, and ``out_path`` readable by pyarrow here);
        its tiers name the reasons' tiers, and its erased customers, as of now,
        are left out.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``band`` (high, medium, low): ``customers``, ``mean_probability``
        (of the rows loaded, when ``store`` is given).
        The Parquet holds ``customer_id``, ``probability``, ``band``,
        ``reasons`` (JSON text, as in ``score.reasons``), ``model_name``,
        ``model_version`` (and ``as_of``).

    Raises
    ------
    ConfigError
        If ``as_of`` is not a date, or ``store`` is given without a date or with
        an ``out_path`` pyarrow cannot open here.
    ValidationError
        If the features were built for another date than ``as_of``, or lack
        the model's columns.
    """
    require_pyspark()
    # Dates and paths first: a wrong one should cost nothing, not a model load and a UDF.
    asked = None if as_of is None else as_timestamp(as_of)
    if store is not None:
        _check_readable_back(out_path)
    frame = _spark_frame(session, features)
    stamp = _scores_date(features, frame, asked)
    if store is not None and stamp is None:
        raise ConfigError(
            "score_on_spark(store=...) needs as_of: the store keeps scores by date, and "
            "these features do not carry theirs. Pass as_of='2026-01-01' (the features' date)."
        )
    frame = _checked_frame(frame)
    from pyspark.sql import functions as F

    from crm_ml.models.tracking import configure_tracking, load_model, spark_probability_udf

    chosen = _reason_options(session, settings, options, tier_names, store)
    configure_tracking(settings)
    started = datetime.now(UTC).replace(tzinfo=None)  # score.scored_at when store= loads them
    target = scoring_target(model_uri, settings)  # the champion's key, or a shadow run's
    uri = f"models:/{target.uri}"
    columns = _signature_columns(uri)
    model = load_model(uri, settings).model
    inputs = _model_inputs(_scored_population(frame, model), columns)
    inputs = _not_erased(session, inputs, store)
    predict = spark_probability_udf(session, uri)
    scored = inputs.withColumn("probability", predict(F.struct(*columns)))
    key = (target.key, target.version)
    scores = scored.mapInPandas(reason_batches(model, chosen, key), SCORE_SCHEMA)
    if stamp is not None:
        # Text cast to TIMESTAMP_NTZ: no time zone conversion on the way.
        scores = scores.withColumn("as_of", F.lit(stamp.isoformat(sep=" ")).cast("timestamp_ntz"))
    scores.write.mode(mode).parquet(os.fspath(out_path))
    log.info("Scored features with %s v%s on Spark into %s", *key, out_path)
    if store is not None:
        return load_spark_scores(store, out_path, as_of=stamp, scored_at=started)
    return _summary(session.read.parquet(os.fspath(out_path)))
