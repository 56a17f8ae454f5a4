"""Load the scores written by ``score_on_spark`` into the store's ``score`` table.

Tags, segments and list exports read the ``score`` table. ``load_spark_scores(store,
"/shared/crm/scores/2026-01-01")`` reads the Parquet that
:func:`~crm_ml.spark.scoring.score_on_spark` wrote, in batches (memory stays
bounded whatever the number of customers), checks it, and writes it with
:func:`crm_ml.models.scoring.replace_scores`, as ``score_customers`` does: in
one transaction, replacing that model's scores for that ``as_of``. A file that
fails a check leaves the table as it was. Rows of customers erased on request
are left out, and counted, whatever wrote the file: the store never holds a
score for an erased person.

Only pyarrow is needed: the scores can be loaded on a machine without Spark.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from sqlalchemy.exc import IntegrityError

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features.spec import as_timestamp
from crm_ml.models.scoring import BANDS, replace_scores
from crm_ml.store import Store
from crm_ml.store.erased import erased_note, lock_out_erasures, rows_not_erased
from crm_ml.store.purges import refuse_purged_date

log = logging.getLogger(__name__)

_TEXT = "text (string)"

#: Columns the ``score`` table needs from a scores file, and the type each must have.
SCORE_FILE_COLUMNS = {
    "customer_id": _TEXT,
    "probability": "floating point (double)",
    "band": _TEXT,
    "reasons": _TEXT,
    "model_name": _TEXT,
    "model_version": _TEXT,
    "as_of": "timestamp or date",
}

_TYPE_CHECKS: dict[str, Callable[[pa.DataType], bool]] = {
    _TEXT: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "floating point (double)": pa.types.is_floating,
    "timestamp or date": lambda t: pa.types.is_timestamp(t) or pa.types.is_date(t),
}

#: The columns that must hold one value per load: one model, one version, one date.
_KEYS = ("model_name", "model_version", "as_of")


def pyarrow_name(path: str) -> str | None:
    """Return the name pyarrow knows a Spark folder by, for schemes only Spark's Hadoop reads.

    ``s3a://b/k`` is ``s3://b/k`` (the same objects); Databricks mounts
    ``dbfs:/mnt/x`` on the driver at ``/dbfs/mnt/x``. None for other paths.
    """
    parts = urlsplit(path)
    if parts.scheme in ("s3a", "s3n"):
        return f"s3://{parts.netloc}{parts.path}"
    if parts.scheme == "dbfs" and not parts.netloc:
        return f"/dbfs{parts.path}"
    return None


def pyarrow_problem(path: str) -> str | None:
    """Say why pyarrow cannot open ``path`` here; None for a local path or a URI it opens.

    The check :func:`load_spark_scores` would fail at, without reading anything:
    an unknown scheme (``s3a://``, ``dbfs:/``), or a filesystem pyarrow cannot
    set up here (``hdfs://`` without libhdfs, an S3 bucket it cannot locate).
    """
    scheme = urlsplit(path).scheme
    if len(scheme) <= 1 or scheme == "file":  # a local path (one letter: a Windows drive)
        return None
    try:
        pafs.FileSystem.from_uri(path)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        return str(exc)
    return None


def _scores_dataset(scores: Any) -> tuple[ds.Dataset, str]:
    """Return a pyarrow dataset over ``scores`` and how to name it in messages."""
    if isinstance(scores, pd.DataFrame | pa.Table):
        table = scores if isinstance(scores, pa.Table) else pa.Table.from_pandas(scores)
        return ds.dataset(table), "the scores frame"
    if not isinstance(scores, str | os.PathLike):
        raise ValidationError(
            f"Expected a path to the scores Parquet (file or folder) or a pandas DataFrame, "
            f"got {type(scores).__name__}. From a Spark DataFrame, write it with "
            ".write.parquet(path) and pass the path."
        )
    path = os.fspath(scores)
    try:
        # Spark's _SUCCESS and .crc files are skipped (pyarrow ignores "_" and "." names).
        return ds.dataset(path, format="parquet"), path
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"No scores at {path}: expected the Parquet folder that score_on_spark wrote "
            "(out_path), readable from this machine."
        ) from exc
    except pa.ArrowInvalid as exc:
        other = pyarrow_name(path)
        hint = f" This machine reads that folder as {other}: pass that." if other else ""
        problem = str(exc).rstrip(".")
        raise ValidationError(
            f"{path} is not readable as Parquet scores: {problem}.{hint}"
        ) from exc


def _check_columns(schema: pa.Schema, label: str, *, need_as_of: bool) -> None:
    """Raise if a column the score table needs is missing or of the wrong type."""
    found = ", ".join(f"{f.name} ({f.type})" for f in schema) or "no columns"
    for name, expected in SCORE_FILE_COLUMNS.items():
        if name == "as_of" and not need_as_of and name not in schema.names:
            continue
        if name not in schema.names:
            hint = " (or pass as_of=)" if name == "as_of" else ""
            raise ValidationError(
                f"{label}: column {name!r} is missing; expected {expected}{hint}. "
                f"Found: {found}. Load the Parquet that score_on_spark wrote."
            )
        kind = schema.field(name).type
        if not _TYPE_CHECKS[expected](kind):
            raise ValidationError(
                f"{label}: column {name!r} has type {kind}; expected {expected}. "
                f"Cast it before writing the scores (found: {found})."
            )


def _naive(values: pd.Series) -> pd.Series:
    """Return timestamps or dates as naive UTC timestamps (the store's form of time)."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert(UTC).dt.tz_localize(None)
    return stamps


def _reject(where: str, row: int, column: str, problem: str) -> ValidationError:
    return ValidationError(
        f"{where}, row {row}, column {column!r}: {problem}. Nothing was loaded; "
        "write the scores again with score_on_spark."
    )


def _check_rows(frame: pd.DataFrame, where: str) -> None:
    """Raise on the first row the score table would refuse (or tags would misread)."""
    checks = [
        ("customer_id", frame["customer_id"].isna(), "customer_id is empty"),
        ("probability", ~frame["probability"].between(0, 1), "probability is not in [0, 1]"),
        ("band", ~frame["band"].isin(BANDS), f"band is not one of {', '.join(BANDS)}"),
    ]
    for key in _KEYS:
        checks.append((key, frame[key].isna(), f"{key} is empty"))
    for column, bad, problem in checks:
        if bad.any():
            at = int(bad.to_numpy().argmax())
            value = frame[column].iloc[at : at + 1].tolist()[0]  # 1.5, not np.float64(1.5)
            raise _reject(where, int(frame.index[at]), column, f"{problem} (found {value!r})")


def _frames(
    dataset: ds.Dataset, label: str, *, as_of: datetime | None, batch_rows: int
) -> Iterator[pd.DataFrame]:
    """Yield the checked rows of ``dataset`` (of ``as_of`` when given), a batch at a time.

    Row numbers in messages count from 1 within each Parquet file; rows of
    other dates are skipped unchecked.
    """
    columns = [c for c in SCORE_FILE_COLUMNS if c in dataset.schema.names]
    for fragment in dataset.get_fragments():
        where = getattr(fragment, "path", label)
        row = 1
        for batch in fragment.to_batches(
            schema=dataset.schema, columns=columns, batch_size=batch_rows
        ):
            frame = batch.to_pandas()
            if "as_of" not in frame.columns:
                frame["as_of"] = as_of
            frame["as_of"] = _naive(frame["as_of"])
            frame.index += row  # row numbers in the file, for messages
            row += len(frame)
            if as_of is not None:
                frame = frame[frame["as_of"] == as_of]
            _check_rows(frame, where)
            if len(frame):
                reasons = frame["reasons"].astype(object)
                # A NaN would reach PostgreSQL as the text 'NaN'; the store wants NULL.
                yield frame.assign(reasons=reasons.where(reasons.notna(), None))


def _one_model(
    frames: Iterator[pd.DataFrame], keys: dict[str, Any], label: str
) -> Iterator[pd.DataFrame]:
    """Pass ``frames`` through, refusing any row of another model, version or date."""
    for frame in frames:
        for key, value in keys.items():
            other = frame.loc[frame[key] != value, key]
            if len(other):
                raise ValidationError(
                    f"{label} holds more than one {key} ({value!r} and {other.iloc[0]!r}); "
                    "one load takes one model version and one as_of. Write each to its own "
                    "folder, or pass as_of= to load one date. Nothing was loaded."
                )
        yield frame


def _no_rows(dataset: ds.Dataset, label: str, as_of: datetime | None) -> ValidationError:
    if as_of is None or "as_of" not in dataset.schema.names:
        return ValidationError(f"{label} holds no scores; nothing was loaded.")
    found = _naive(dataset.to_table(columns=["as_of"]).column("as_of").unique().to_pandas())
    dates = ", ".join(f"{d:%Y-%m-%d %H:%M}" for d in sorted(found)) or "none"
    return ValidationError(
        f"{label} holds no scores as of {as_of:%Y-%m-%d %H:%M}; it holds as_of {dates}. "
        "Nothing was loaded."
    )


def load_spark_scores(
    store: Store,
    scores: str | os.PathLike[str] | pd.DataFrame | pa.Table,
    *,
    as_of: datetime | date | str | None = None,
    scored_at: datetime | None = None,
    batch_rows: int = 100_000,
) -> pd.DataFrame:
    """Load scores written by ``score_on_spark`` into the store's ``score`` table.

    The rows already stored for that model and ``as_of`` are replaced, not
    duplicated, in one transaction: if a check or the store fails, nothing is
    written and the previous scores stay.

    Parameters
    ----------
    store : Store
        The store whose ``score`` table receives the rows.
    scores : path, pandas.DataFrame or pyarrow.Table
        The Parquet folder (or file) ``score_on_spark`` wrote to ``out_path``,
        readable from this machine; or a frame with the same columns:
        ``customer_id``, ``probability``, ``band``, ``reasons`` (JSON text),
        ``model_name``, ``model_version`` and ``as_of``.
    as_of : date, optional
        Needed when the scores have no ``as_of`` column (``score_on_spark``
        without ``as_of``); otherwise loads only the rows of that date.
    scored_at : datetime, optional
        Stored in ``score.scored_at`` (naive UTC); default now.
    batch_rows : int
        Rows read and written at a time; bounds memory.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``band`` (high, medium, low): ``customers``, ``mean_probability``
        of the rows loaded. Its ``attrs`` hold ``erased`` (rows of customers erased
        on request, left out) and ``erased_note`` (saying so; empty when none).

    Raises
    ------
    ValidationError
        A column is missing or of the wrong type, a row is invalid (the message
        names the file, row and column), or the scores hold several models,
        versions or dates.
    NotFoundError
        Nothing at the path.
    """
    dataset, label = _scores_dataset(scores)
    _check_columns(dataset.schema, label, need_as_of=as_of is None)
    wanted = as_timestamp(as_of) if as_of is not None else None
    frames = _frames(dataset, label, as_of=wanted, batch_rows=batch_rows)
    first = next(frames, None)
    if first is None:
        raise _no_rows(dataset, label, wanted)
    keys = {key: first[key].iloc[0] for key in _KEYS}
    name, version, day = str(keys["model_name"]), str(keys["model_version"]), keys["as_of"]
    stamp = scored_at or datetime.now(UTC).replace(tzinfo=None)
    left_out = [0]
    try:
        with store.begin() as conn:
            refuse_purged_date(conn, day.to_pydatetime(), what=f"{name} scores")
            checked = _one_model(chain([first], frames), keys, label)
            summary = replace_scores(
                conn,
                rows_not_erased(checked, lock_out_erasures(conn), left_out),
                model_name=name,
                as_of=day.to_pydatetime(),
                model_version=version,
                scored_at=stamp,
            )
    except (IntegrityError, psycopg.IntegrityError) as exc:
        # The only constraint a checked row can break is the key: a customer twice.
        raise ValidationError(
            f"{label}: a customer appears more than once for {name} as of {day:%Y-%m-%d} "
            f"(the store said: {getattr(exc, 'orig', None) or exc}). One row per customer; "
            "nothing was loaded."
        ) from exc
    count = int(summary["customers"].sum())
    log.info("Loaded %d scores of %s v%s as of %s from %s", count, name, version, day, label)
    note = erased_note(left_out[0], f"the {name} scores loaded from {label}")
    if note:
        log.info("%s", note)
    summary.attrs.update(erased=left_out[0], erased_note=note)
    return summary
