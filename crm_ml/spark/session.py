"""A Spark session for crm_ml, and the store's tables registered on it for Ibis.

pyspark is imported inside the functions, so ``import crm_ml.spark`` works
without it; the ``spark`` extra installs it (``pip install 'crm_ml[spark]'``,
Java 17 on the machine).

Two ways in:

- :func:`spark_session` starts a local (or ``spark://``/``yarn``) session
  with the settings crm_ml relies on: UTC session time zone (timestamps in
  the store are naive UTC), Arrow transfers to pandas, no UI, few shuffle
  partitions for small data. Nothing is fetched at run time (no
  ``spark.jars.packages``): it works offline.
- A notebook that already has a ``spark`` session (Databricks, EMR, a
  JupyterHub kernel) passes it to :func:`spark_tables` as it is.

:func:`spark_tables` registers each store table as a temporary view named as
in the store, from the folders written by :func:`export_tables` (the store's
export to partitioned Parquet, plus the identity tables the features read and
the erased customers scoring leaves out) or from a catalog database, and
returns an Ibis backend: pass it wherever a ``Store`` is accepted by
:mod:`crm_ml.features` (``customer_features(tables, as_of)``, ``churn_labels``...).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from crm_ml.errors import ConfigError, NotFoundError, StoreError, ValidationError
from crm_ml.features.backend import FEATURE_TABLES
from crm_ml.store.connection import Store
from crm_ml.store.schema import SOURCE_TABLES

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Tables :func:`spark_tables` registers by default: those features and labels read, and
#: the customers erased on request, whom :func:`~crm_ml.spark.score_on_spark` leaves out.
SESSION_TABLES = (*FEATURE_TABLES, "erased_customer")

#: Tables :func:`export_tables` writes: the store's source tables and those of
#: :data:`SESSION_TABLES`.
SPARK_TABLES = tuple(dict.fromkeys((*SOURCE_TABLES, *SESSION_TABLES)))

#: Spark settings crm_ml needs whatever the cluster (timestamps are naive UTC).
REQUIRED_CONF = {"spark.sql.session.timeZone": "UTC"}

#: Defaults for a session crm_ml starts itself; ``conf`` overrides them.
DEFAULT_CONF = {
    **REQUIRED_CONF,
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
}


def require_pyspark() -> Any:
    """Import pyspark, or say how to install it."""
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError(
            "Spark support needs pyspark and Java 17: pip install 'crm_ml[spark]' "
            f"(import failed: {exc})."
        ) from exc
    return pyspark


def local_warehouse() -> str:
    """Return the ``spark.sql.warehouse.dir`` of a local session: this process's temp folder.

    Spark's default, ``./spark-warehouse``, appears in the working directory (a
    project folder, the repository) as soon as anything looks past the temporary
    views into the catalog. A local session's catalog is in memory and forgets its
    tables when the session ends, so their files belong in a temporary folder.
    """
    return os.path.join(tempfile.gettempdir(), f"crm_ml-spark-warehouse-{os.getpid()}")


def session_conf(
    master: str,
    *,
    shuffle_partitions: int | None,
    driver_memory: str | None,
    local_ip: str | None,
    conf: Mapping[str, str] | None,
) -> dict[str, str]:
    """Return the Spark configuration of :func:`spark_session` (defaults, then ``conf``)."""
    settings = dict(DEFAULT_CONF)
    if shuffle_partitions is None:
        # Spark's default of 200 partitions costs seconds of task overhead on small data.
        shuffle_partitions = 8 if master.startswith("local") else 200
    settings["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    if driver_memory:
        settings["spark.driver.memory"] = driver_memory
    if master.startswith("local"):
        # A cluster keeps its own JVM options and warehouse; a local JVM runs in UTC like the
        # session, and keeps its warehouse out of the working directory (see spark_session).
        settings["spark.driver.extraJavaOptions"] = "-Duser.timezone=UTC"
        settings["spark.sql.warehouse.dir"] = local_warehouse()
        if local_ip:
            settings["spark.driver.host"] = local_ip
            settings["spark.driver.bindAddress"] = local_ip
    settings.update(conf or {})
    return settings


def spark_session(
    master: str = "local[2]",
    *,
    app_name: str = "crm_ml",
    shuffle_partitions: int | None = None,
    driver_memory: str | None = None,
    local_ip: str | None = "127.0.0.1",
    conf: Mapping[str, str] | None = None,
) -> Any:
    """Start (or reuse) a Spark session set up for crm_ml.

    Parameters
    ----------
    master : str
        ``local[2]`` (two cores of this machine), ``local[*]``, ``spark://host:7077``, ``yarn``...
    shuffle_partitions : int, optional
        ``spark.sql.shuffle.partitions``; 8 for a local master, else Spark's 200.
    driver_memory : str, optional
        E.g. ``"4g"``; only takes effect when this call starts the JVM.
    local_ip : str or None
        For a local master, the address Spark binds to (``SPARK_LOCAL_IP``
        unless already set): a laptop on a VPN or without a resolvable host
        name otherwise fails to start. None leaves it to Spark.
    conf : mapping, optional
        Further Spark settings, applied last. A local session keeps its warehouse
        (``spark.sql.warehouse.dir``, where ``saveAsTable`` writes) in a folder of
        this process under the temp dir (:func:`local_warehouse`), not Spark's
        ``./spark-warehouse``; set it here to keep such tables.

    Returns
    -------
    pyspark.sql.SparkSession
        With session time zone UTC. If a session already runs in this process,
        it is returned with the runtime settings applied (Spark ignores
        start-up settings such as ``driver_memory`` then).
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        # Read only from the environment: SPARK_LOCAL_IP by the JVM launcher, and
        # PYSPARK_PYTHON by pyspark, whose Python workers must run this interpreter
        # (the venv holding crm_ml), not whichever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if local_ip:
            os.environ.setdefault("SPARK_LOCAL_IP", local_ip)
    settings = session_conf(
        master,
        shuffle_partitions=shuffle_partitions,
        driver_memory=driver_memory,
        local_ip=local_ip,
        conf=conf,
    )
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM launcher raises several types
        raise StoreError(
            f"Cannot start Spark ({master}): {exc}. Check that Java 17 is installed "
            "(java -version) and JAVA_HOME points to it."
        ) from exc
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session on %s", session.version, master)
    return session


def _spark_type(arrow_type: Any) -> Any:
    """Return the Spark type of an Arrow type of :func:`crm_ml.store.export.arrow_schema`."""
    import pyarrow as pa
    from pyspark.sql import types as T

    if pa.types.is_timestamp(arrow_type):
        # Exported as UTC instants; read as TIMESTAMP_NTZ they keep their UTC wall-clock
        # values whatever the session's time zone (Spark >= 4.0, SPARK-47447).
        return T.TimestampNTZType()
    if pa.types.is_floating(arrow_type):
        return T.DoubleType()
    if pa.types.is_boolean(arrow_type):
        return T.BooleanType()
    if pa.types.is_integer(arrow_type):
        return T.LongType()
    return T.StringType()


def table_schema(name: str) -> Any:
    """Return the Spark schema of store table ``name``, as the Parquet export writes it."""
    from pyspark.sql import types as T

    from crm_ml.store.export import arrow_schema
    from crm_ml.store.schema import Base

    table = Base.metadata.tables[name]
    fields = [
        T.StructField(f.name, _spark_type(f.type), nullable=f.nullable) for f in arrow_schema(table)
    ]
    return T.StructType(fields)


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


@dataclass(frozen=True)
class _TableSource:
    """Where :func:`spark_tables` reads one store table, and the schema found there."""

    name: str
    #: The table's folder, or ``database.table`` in the catalog.
    location: str
    #: Spark's view of the stored columns; None for an empty table (a folder without files).
    found: Any | None


def _missing_folder(name: str, path: str, location: str) -> NotFoundError:
    return NotFoundError(
        f"No exported table {name!r} at {path}: expected a folder per store table. "
        f"Write them with crm_ml.spark.export_tables(store, {location!r}) "
        "(the features also read customer_merge and customer_change, and scoring "
        "erased_customer)."
    )


#: The Hadoop connector that gives Spark each common storage scheme.
_CONNECTORS = {
    "gs": "Google's gcs-connector jar",
    "s3a": "the hadoop-aws jar with the AWS SDK bundle",
    "s3": "the hadoop-aws jar with the AWS SDK bundle, and write the path as s3a://",
    "abfs": "the hadoop-azure jar",
    "abfss": "the hadoop-azure jar",
    "wasb": "the hadoop-azure jar",
    "wasbs": "the hadoop-azure jar",
}


def _java_error(exc: Exception) -> str:
    """Return the first line of the Java error behind ``exc`` (py4j's text begins with a call)."""
    lines = [line.strip().removeprefix(": ") for line in str(exc).splitlines()]
    found = [line for line in lines if line and not line.startswith("An error occurred")]
    return found[0] if found else type(exc).__name__


def _unreadable_export(path: str, location: str, exc: Exception) -> StoreError:
    """Describe an export location Spark cannot read: a scheme it has no connector for, or else."""
    cause = _java_error(exc)
    if "No FileSystem for scheme" not in cause:
        return StoreError(
            f"Spark cannot read {path}: {cause}. Check that the cluster can reach "
            f"{location} (credentials, network), or copy the export somewhere Spark can read."
        )
    scheme = urlsplit(path).scheme
    connector = _CONNECTORS.get(scheme, f"the Hadoop FileSystem for {scheme}://")
    return StoreError(
        f"Spark cannot read {path}: no FileSystem for scheme {scheme!r} on this Spark. Install "
        f"the connector on the cluster ({connector}, e.g. with spark.jars when the session "
        f"starts), or copy the export in {location} somewhere Spark can read (a local folder "
        "for a local session, HDFS...). Nothing was registered."
    )


def _parquet_source(session: Any, location: str, name: str) -> _TableSource:
    """Find one exported table's folder and the schema of its Parquet files."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import types as T

    path = f"{location.rstrip('/')}/{name}"
    if _is_local(path) and not Path(path.removeprefix("file://")).is_dir():
        raise _missing_folder(name, path, location)
    try:
        # Spark reads one file's footer (no data) to give the schema.
        schema = session.read.parquet(path).schema
    except AnalysisException as exc:
        condition = exc.getCondition()
        if condition == "UNABLE_TO_INFER_SCHEMA":  # no file: the export of an empty table
            return _TableSource(name, path, None)
        if condition == "PATH_NOT_FOUND":
            raise _missing_folder(name, path, location) from exc
        raise
    except Exception as exc:  # py4j's Py4JJavaError, or Spark Connect's own error
        # Its text is the whole Java stack (14,000 characters): say what it means instead.
        raise _unreadable_export(path, location, exc) from exc
    # `year` is the partition folders' column, not a stored one.
    found = T.StructType([f for f in schema.fields if f.name != "year"])
    return _TableSource(name, path, found)


def _catalog_source(session: Any, database: str, name: str) -> _TableSource:
    """Find one store table in the catalog and its schema."""
    from pyspark.errors import AnalysisException

    location = f"{database}.{name}"
    try:
        found = session.table(location).schema
    except AnalysisException as exc:
        if exc.getCondition() != "TABLE_OR_VIEW_NOT_FOUND":
            raise
        raise NotFoundError(
            f"No table {location} in the catalog: expected a table per store table, named "
            f"and typed as in the store (crm_ml.spark.table_schema({name!r})). Create "
            f"{location}, or leave {name!r} out with tables=."
        ) from exc
    return _TableSource(name, location, found)


def _readable_as(found: Any, declared: Any) -> bool:
    """Whether a stored column of type ``found`` gives the declared column's values."""
    from pyspark.sql import types as T

    if found == declared:
        return True
    if isinstance(declared, T.LongType):
        return isinstance(found, T.IntegerType | T.ShortType | T.ByteType)
    if isinstance(declared, T.TimestampNTZType):
        # An instant (the export's UTC timestamps, a lake's TIMESTAMP): read in UTC.
        return isinstance(found, T.TimestampType)
    if isinstance(declared, T.DoubleType):
        return isinstance(found, T.DecimalType)  # cast to double when read
    return False


def _column_problems(found: Any, declared: Any) -> list[str]:
    """Describe each declared column that ``found`` lacks or holds in an unreadable type."""
    found_types = {f.name: f.dataType for f in found.fields}
    problems = []
    for field in declared.fields:
        expected = field.dataType.simpleString()
        actual = found_types.get(field.name)
        if actual is None:
            problems.append(f"column {field.name} is missing (expected {expected})")
        elif not _readable_as(actual, field.dataType):
            problems.append(f"column {field.name} is {actual.simpleString()}, expected {expected}")
    return problems


def _check_schemas(sources: list[_TableSource], remedy: str) -> None:
    """Refuse, naming every bad table and column at once, tables the features would misread."""
    bad = []
    for source in sources:
        if source.found is None:
            continue
        problems = _column_problems(source.found, table_schema(source.name))
        if problems:
            bad.append(f"  {source.name} ({source.location}): " + "; ".join(problems))
    if bad:
        raise ValidationError(
            f"{len(bad)} store table(s) lack columns crm_ml reads, or hold them in a type "
            "it cannot read as declared; nothing was registered on Spark:\n"
            + "\n".join(bad)
            + f"\n{remedy}"
        )


def _parquet_remedy(location: str) -> str:
    return (
        "Such an export comes from another crm_ml version or was made by hand. Re-export "
        "it with this crm_ml: `crm-ml upgrade` (brings the store up to this version), then "
        f"`crm-ml export parquet {location}` or crm_ml.spark.export_tables(store, {location!r})."
    )


def _catalog_remedy(database: str) -> str:
    return (
        f"Rewrite those tables of {database} with the columns and types of "
        "crm_ml.spark.table_schema(name), e.g. from an export made by this crm_ml: "
        "`crm-ml upgrade`, then crm_ml.spark.export_tables(store, folder) or "
        "`crm-ml export parquet FOLDER`."
    )


def _stored_types(source: _TableSource) -> dict[str, Any]:
    """Return ``{column: Spark type}`` as stored (empty for an empty folder)."""
    return {f.name: f.dataType for f in source.found.fields} if source.found else {}


def _casts(source: _TableSource, kinds: tuple[type, ...]) -> dict[str, Any]:
    """Return ``{column: declared type}`` for the declared columns stored as one of ``kinds``."""
    stored = _stored_types(source)
    return {
        f.name: f.dataType
        for f in table_schema(source.name).fields
        if isinstance(stored.get(f.name), kinds)
    }


def _parquet_frame(session: Any, source: _TableSource) -> Any:
    """Read one checked exported table with its declared schema (an empty folder gives no rows)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # The schema is given, not inferred: an empty table has no file to infer from,
    # and the `year=` partition folders must not add a column. The reader widens
    # integers and reads instants as TIMESTAMP_NTZ, but reads DECIMAL only as such.
    decimals = _casts(source, (T.DecimalType,))
    stored = _stored_types(source)
    read_as = T.StructType(
        [
            T.StructField(f.name, stored[f.name], f.nullable) if f.name in decimals else f
            for f in table_schema(source.name).fields
        ]
    )
    frame = session.read.schema(read_as).parquet(source.location)
    frame = frame.drop("year") if "year" in frame.columns else frame
    return frame.withColumns({c: F.col(c).cast(t) for c, t in decimals.items()})


def _catalog_frame(session: Any, source: _TableSource) -> Any:
    """Read one checked catalog table, DECIMAL and narrower integers cast to the declared type."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    casts = _casts(source, (T.DecimalType, T.IntegerType, T.ShortType, T.ByteType))
    frame = session.table(source.location)
    return frame.withColumns({c: F.col(c).cast(t) for c, t in casts.items()})


def spark_tables(
    session: Any,
    parquet_dir: str | os.PathLike[str] | None = None,
    *,
    database: str | None = None,
    tables: Iterable[str] | None = None,
) -> Any:
    """Register the store's tables on ``session`` and return an Ibis backend over them.

    Every table's stored schema (a folder's Parquet files, or the catalog
    table) is checked first against :func:`table_schema`. A table that lacks
    a column (an export from another crm_ml version, or made by hand) or
    holds one in a type Spark cannot read as declared (money as integers) is
    refused: its features would come out wrong, or fail deep inside Spark.
    These stored types are read as the declared ones:

    - narrower integers (INT, SMALLINT, TINYINT) for BIGINT, widened;
    - DECIMAL for DOUBLE (money in many lakes), cast to double: money at
      the decimal's scale comes out as the store's doubles, and the
      features as DuckDB's;
    - TIMESTAMP (an instant, as the export writes it) for TIMESTAMP_NTZ:
      a folder's is read as TIMESTAMP_NTZ at its UTC wall-clock time; a
      catalog's stays TIMESTAMP, read in Ibis's UTC session time zone.

    Anything else (FLOAT for DOUBLE, DATE for a timestamp, integers for
    text...) is refused. Columns the store does not declare are ignored. An
    empty folder (the export of an empty table) is accepted and gives no rows.

    Parameters
    ----------
    session : pyspark.sql.SparkSession
        From :func:`spark_session` or the notebook's own ``spark``. Ibis sets
        its session time zone to UTC.
    parquet_dir : path, optional
        A folder written by ``crm-ml export parquet`` (local, or a path Spark
        reads such as ``hdfs://`` or ``s3a://`` when the cluster has the connector).
    database : str, optional
        Instead of ``parquet_dir``: a catalog database holding tables named
        as in the store (``catalog.schema`` on Unity Catalog).
    tables : iterable of str, optional
        Which tables; by default those the features and labels read
        (:data:`crm_ml.features.backend.FEATURE_TABLES`) and ``erased_customer``,
        which scoring reads (:data:`SESSION_TABLES`).

    Returns
    -------
    ibis backend
        An Ibis PySpark connection on which each table is a temporary view of
        the same name. Pass it to ``customer_features``, ``churn_labels``...

    Raises
    ------
    NotFoundError
        If a table's folder, or catalog table, does not exist.
    StoreError
        If Spark cannot read ``parquet_dir``: no connector for its scheme
        (``gs://`` without the GCS connector), no access...
    ValidationError
        If tables lack columns or hold unreadable types: every such table and
        column is named with the type expected and found, and nothing is
        registered.
    """
    require_pyspark()
    import ibis

    if (parquet_dir is None) == (database is None):
        raise ConfigError(
            "spark_tables needs exactly one of parquet_dir (a `crm-ml export parquet` folder) "
            f"or database (a catalog database); got parquet_dir={parquet_dir!r}, "
            f"database={database!r}."
        )
    names = list(SESSION_TABLES if tables is None else tables)
    if parquet_dir is not None:
        location = os.fspath(parquet_dir)
        sources = [_parquet_source(session, location, name) for name in names]
        _check_schemas(sources, _parquet_remedy(location))
        frames = [_parquet_frame(session, source) for source in sources]
    else:
        assert database is not None
        sources = [_catalog_source(session, database, name) for name in names]
        _check_schemas(sources, _catalog_remedy(database))
        frames = [_catalog_frame(session, source) for source in sources]
    for source, frame in zip(sources, frames, strict=True):
        frame.createOrReplaceTempView(source.name)
    log.info("Registered %d store tables on Spark from %s", len(names), parquet_dir or database)
    return ibis.pyspark.connect(session)


def export_tables(
    store: Store, out_dir: str | os.PathLike[str], *, progress: bool = False
) -> pd.DataFrame:
    """Export every table Spark needs to Parquet under ``out_dir`` (see :data:`SPARK_TABLES`).

    The source tables of ``crm-ml export parquet`` plus the identity tables the
    features read (``customer_merge``, ``customer_change``) and the erased
    customers scoring leaves out (``erased_customer``), partitioned by year.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``table``, with columns ``rows`` and ``path``.
    """
    from crm_ml.store.export import export_parquet

    return export_parquet(store, Path(out_dir), tables=SPARK_TABLES, progress=progress)
