"""Building the feature table: one row per customer at ``as_of``, typed as the catalog declares."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
from tqdm.auto import tqdm

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.features.align import POSITION, numbered_population, positioned, scatter
from crm_ml.features.backend import Snapshot, TableSource, fetch, open_tables
from crm_ml.features.catalog import GROUPS, feature_list, select_groups
from crm_ml.features.identity import open_snapshot, population
from crm_ml.features.span import check_as_of
from crm_ml.features.spec import Feature, FeatureGroup, FeatureWindows, as_timestamp
from crm_ml.outputs import check_output_file, staged_file

log = logging.getLogger(__name__)

#: ``progress(group_name, groups_done, groups_total)``, called as each group starts and at the end.
ProgressCallback = Callable[[str, int, int], None]
DEFAULT_WINDOWS = FeatureWindows()


def conform(frame: pd.DataFrame, declared: Sequence[Feature]) -> pd.DataFrame:
    """Fill and cast ``frame``'s columns to the declared features, in declared order.

    Returns
    -------
    pandas.DataFrame
        Same index; one column per declared feature, of its declared dtype.
    """
    missing = [f.name for f in declared if f.name not in frame.columns]
    if missing:
        raise ConfigError(f"The feature queries did not produce {missing}; they are declared.")
    columns: dict[str, pd.Series] = {}
    for feature in declared:
        values = frame[feature.name]
        if feature.fill is not None:
            # Booleans arrive as 0/1 counts; fill them with a number, not a bool.
            fill = int(feature.fill) if feature.dtype == "bool" else feature.fill
            values = values.fillna(fill)
        if feature.dtype == "category":
            kind = pd.CategoricalDtype(list(feature.categories))
            columns[feature.name] = values.astype("str").astype(kind)
        else:
            columns[feature.name] = values.astype(feature.dtype)
    return pd.DataFrame(columns, index=frame.index)


def _group_frame(snap: Snapshot, group: FeatureGroup, index: pd.Index) -> pd.DataFrame:
    declared = group.features(snap.windows)
    names = {f.name for f in declared}
    parts = []
    for expr in group.expressions(snap):
        part = fetch(positioned(snap, expr))
        if not part[POSITION].is_unique:
            raise ConfigError(f"A {group.name} query returned several rows for one customer.")
        keep = [c for c in part.columns if c in names or c == POSITION]
        parts.append(scatter(part[keep], len(index)))
    frame = conform(pd.concat(parts, axis=1), declared)
    frame.index = index
    return frame


def _typed(value: ir.Value, feature: Feature) -> ir.Value:
    """``value`` filled and cast in the engine as :func:`conform` does in pandas."""
    fill = feature.fill
    if fill is not None and not (isinstance(fill, float) and math.isnan(fill)):
        # Booleans arrive as 0/1 counts; fill them with a number, not a bool.
        value = value.fill_null(int(fill) if feature.dtype == "bool" else fill)
    if feature.dtype == "bool":
        return value != 0
    if feature.dtype == "category":
        return value.cast("string")
    return value.cast(feature.dtype)


def feature_query(snap: Snapshot, groups: Sequence[FeatureGroup]) -> ir.Table:
    """Every customer's features as one query, filled and typed in the engine (nothing fetched).

    For engines that keep the result where it is (Spark writing Parquet):
    :func:`conform` applied to its rows gives :func:`customer_features`.

    Returns
    -------
    ibis Table
        ``customer_id``, then one column per declared feature: ``int64``,
        ``float64`` (NULL where undefined), ``boolean``, or the category's text.
    """
    table = population(snap).select("customer_id")
    declared = [f for group in groups for f in group.features(snap.windows)]
    names = {f.name for f in declared}
    for group in groups:
        for expr in group.expressions(snap):
            keep = [c for c in expr.columns if c in names]
            table = table.left_join(expr.select("customer_id", *keep), "customer_id")
    return table.select("customer_id", **{f.name: _typed(table[f.name], f) for f in declared})


def _progress_steps(
    groups: Sequence[FeatureGroup], progress: bool | ProgressCallback
) -> Iterator[FeatureGroup]:
    total = len(groups)
    if callable(progress):
        for done, group in enumerate(groups):
            progress(group.name, done, total)
            yield group
        progress("done", total, total)
        return
    bar = tqdm(groups, desc="features", unit="group", disable=not progress)
    for group in bar:
        bar.set_postfix_str(group.name)
        yield group


def customer_features(
    store: TableSource,
    as_of: datetime | date | str,
    *,
    groups: Iterable[str] | None = None,
    windows: FeatureWindows = DEFAULT_WINDOWS,
    progress: bool | ProgressCallback = False,
    allow_outside_data: bool = False,
) -> pd.DataFrame:
    """Every customer's features at ``as_of``, from rows dated strictly before it.

    Parameters
    ----------
    store : Store or Ibis backend
        The customer/loyalty store (DuckDB, SQLite or PostgreSQL), or an open
        Ibis connection holding its tables, such as Spark over exported
        Parquet (:func:`crm_ml.spark.spark_tables`).
    as_of : datetime, date or str
        Cut-off, naive UTC (an aware time is converted): a row dated exactly
        ``as_of`` is not seen.
    groups : iterable of str, optional
        Subset of ``value``, ``product``, ``behaviour``, ``loyalty``,
        ``campaigns``, ``profile``; all by default.
    windows : FeatureWindows
        Look-back windows; they also name the window columns.
    progress : bool or callable
        ``True`` shows a tqdm bar with one step per group; a callable is called
        as ``progress(group_name, groups_done, groups_total)``.
    allow_outside_data : bool
        Build features at a date before the store's data starts or long after its
        last order (both refused by default, see :func:`~crm_ml.features.check_as_of`),
        for a deliberate what-if such as ageing a store's customers past its data.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), one row per customer who exists at
        ``as_of`` (active, not merged away, created before it); one column per
        feature of :func:`crm_ml.features.catalog`, of its declared dtype.
        ``attrs["as_of"]`` holds ``as_of`` as ISO text (naive UTC, e.g.
        ``'2026-01-01T00:00:00'``; read it with :func:`features_as_of`).

    Raises
    ------
    ValidationError
        If ``as_of`` is before the store's data starts or more than
        :data:`~crm_ml.features.span.MAX_DAYS_AFTER_DATA` days after its last
        order: the frame would be empty, or everyone would look lapsed.
    ConfigError
        If ``as_of`` is not a date (a number such as ``20260101`` is refused).
    """
    # On every source, Spark included: the span is two aggregates over two columns, small beside
    # the dozens of queries over the same tables that the features take, and a wrong date costs
    # a whole build that means nothing.
    cutoff = as_timestamp(as_of) if allow_outside_data else check_as_of(store, as_of)
    selected = select_groups(groups)
    with (
        open_tables(store) as (con, dialect),
        open_snapshot(con, dialect, cutoff, windows) as snap,
        numbered_population(snap) as index,
    ):
        steps = _progress_steps(selected, progress)
        parts = [_group_frame(snap, group, index) for group in steps]
    frame = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=index)
    if not frame.index.is_monotonic_increasing:
        # The database's collation may order ids differently from Python (PostgreSQL locales),
        # and Spark numbers customers within hash buckets (features.align).
        frame = frame.sort_index()
    # ISO text, not a datetime: pandas writes attrs to Parquet as JSON, and a datetime there
    # makes frame.to_parquet() raise.
    frame.attrs["as_of"] = cutoff.isoformat()
    log.info("Built %d features for %d customers at %s", frame.shape[1], len(frame), cutoff)
    return frame


def features_as_of(features: pd.DataFrame) -> datetime | None:
    """Return the date a :func:`customer_features` frame was built for, or None if unknown.

    Read from ``features.attrs["as_of"]``, which survives slicing, filtering,
    ``assign`` and a Parquet round trip, but not a ``join`` with a frame that
    lacks it nor a ``concat`` of frames built for different dates.

    Raises
    ------
    ConfigError
        If ``attrs["as_of"]`` holds something that is not a date.
    """
    built = features.attrs.get("as_of")
    return None if built is None else as_timestamp(built, what='features.attrs["as_of"]')


def check_features_date(features: pd.DataFrame, as_of: datetime, *, use: str) -> None:
    """Refuse features built for another date than ``as_of`` (when the frame says which).

    ``use`` says what was about to happen, e.g. ``"scored"``: results dated
    ``as_of`` from another date's data would look right and be wrong.

    Raises
    ------
    ValidationError
        If :func:`features_as_of` is known and differs from ``as_of``.
    """
    built = features_as_of(features)
    if built is None or built == as_of:
        return
    raise ValidationError(
        f"These features were built as of {_moment(built)} but are being {use} as of "
        f"{_moment(as_of)}: the results would describe customers at the wrong date. Build "
        f"them for that date (customer_features(store, {_moment(as_of)!r})), or use "
        f"as_of={_moment(built)!r}."
    )


def _moment(at: datetime) -> str:
    """``2026-01-01``, or ``2026-01-01 06:30`` when the time is not midnight."""
    return f"{at:%Y-%m-%d}" if at.time() == datetime.min.time() else f"{at:%Y-%m-%d %H:%M}"


def build_feature_file(
    store: TableSource,
    as_of: datetime | date | str,
    path: str | os.PathLike[str],
    *,
    groups: Iterable[str] | None = None,
    windows: FeatureWindows = DEFAULT_WINDOWS,
    progress: bool | ProgressCallback = True,
    private: bool = False,
) -> Path:
    """Write :func:`customer_features` to a Parquet file, atomically.

    The file appears complete or not at all: it is written beside the target
    and renamed over it (an existing file is replaced). A ``private`` file is
    readable by its owner only (0600), as ``crm-ml features build --out``
    writes it: the features include sensitive ones, keyed by customer id.
    ``as_of`` is kept in the file's metadata, as pandas keeps ``attrs``:
    ``pd.read_parquet(path)`` gives it back in ``attrs["as_of"]`` (other readers
    find it in the ``PANDAS_ATTRS`` JSON of the Parquet key-value metadata).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValidationError
        If ``path`` does not end in ``.parquet`` (checked before any work).
    ConfigError
        If ``path`` is a folder or its folder is a file (checked before any
        work), or the file cannot be written.
    """
    # Checked first: a bad path should not cost the minutes of building features.
    target = check_output_file(Path(path), what="the feature file")
    if target.suffix.lower() != ".parquet":
        raise ValidationError(
            f"{target} would be written as Parquet whatever its name; expected a file name "
            f"ending in .parquet, e.g. {target.with_suffix('.parquet')}."
        )
    frame = customer_features(store, as_of, groups=groups, windows=windows, progress=progress)
    with staged_file(target, what="the feature file", private=private) as staging:
        frame.to_parquet(staging, index=True)
    log.info("Wrote %d customers x %d features to %s", *frame.shape, target)
    return target


__all__ = [
    "GROUPS",
    "build_feature_file",
    "customer_features",
    "feature_list",
    "feature_query",
    "features_as_of",
]
