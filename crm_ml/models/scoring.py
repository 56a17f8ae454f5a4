"""Score customers with a registered model and write scores and reasons to the store.

``score_customers(store, features, as_of, model="crm-churn@champion", settings=...)``
loads the model from the MLflow registry, scores the features frame in
batches (probability, band, plain-language reasons) and writes them to the
``score`` table in **one transaction**: the rows of that model and ``as_of``
are deleted first, so re-running a date replaces its scores instead of
duplicating them, and a failure leaves the previous scores untouched.

Bands (``band_thresholds``, default ``(0.7, 0.4)``): ``high`` when the
probability is at least 0.7, ``medium`` from 0.4, ``low`` below. For a churn
model ``high`` is high risk; for a propensity model, a likely buyer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, insert
from tqdm.auto import tqdm

from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.models.estimators import BoostedClassifier
from crm_ml.models.phrases import PhraseContext
from crm_ml.models.reasons import reasons_json
from crm_ml.store import Store
from crm_ml.store.schema import Score

log = logging.getLogger(__name__)

DEFAULT_BAND_THRESHOLDS = (0.7, 0.4)
#: The bands :func:`risk_band` gives, highest first; tags and segments select on them.
BANDS = ("high", "medium", "low")
SCORE_TABLE = cast(Table, Score.__table__)
SCORE_COLUMNS = (
    "model_name",
    "as_of",
    "customer_id",
    "model_version",
    "probability",
    "band",
    "reasons",
    "scored_at",
)


def risk_band(
    probability: np.ndarray, thresholds: tuple[float, float] = DEFAULT_BAND_THRESHOLDS
) -> np.ndarray:
    """Return ``high`` (``p >= high``), ``medium`` (``p >= medium``) or ``low`` per probability."""
    high, medium = thresholds
    if not 0 <= medium <= high <= 1:
        raise ValidationError(
            "Band thresholds must be (high, medium) with 0 <= medium <= high <= 1, "
            f"got {thresholds}."
        )
    p = np.asarray(probability, dtype=float)
    return np.where(p >= high, "high", np.where(p >= medium, "medium", "low")).astype(object)


def _naive_utc(value: str | date | pd.Timestamp) -> datetime:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _keyed(features: pd.DataFrame) -> pd.DataFrame:
    """Return the features indexed by text ``customer_id``, refusing duplicates."""
    frame = features.set_index("customer_id") if "customer_id" in features.columns else features
    frame = frame.set_axis(frame.index.astype(str).rename("customer_id"), axis=0)
    if frame.index.has_duplicates:
        dupes = frame.index[frame.index.duplicated()].unique()[:5].tolist()
        raise ValidationError(
            f"Features hold customers more than once (e.g. {dupes}); one row per customer."
        )
    return frame


def _resolve_model(
    model: str | BoostedClassifier, settings: Settings | None, model_name: str | None
) -> tuple[BoostedClassifier, str, str]:
    if isinstance(model, BoostedClassifier):
        default = "crm-churn" if model.target == "churn" else "crm-propensity"
        return model, model_name or default, "local"
    if settings is None:
        raise ValidationError(
            f"Loading {model!r} from the registry needs settings (the MLflow store)."
        )
    from crm_ml.models.tracking import load_model

    loaded = load_model(model, settings)
    return loaded.model, model_name or loaded.name, loaded.version


def score_batches(
    model: BoostedClassifier,
    features: pd.DataFrame,
    *,
    batch_size: int = 100_000,
    band_thresholds: tuple[float, float] = DEFAULT_BAND_THRESHOLDS,
    top_k: int = 3,
    language: str = "en",
    context: PhraseContext | None = None,
    attribution: str = "shap",
) -> Iterator[pd.DataFrame]:
    """Yield scored batches of ``features`` (indexed by ``customer_id``).

    Yields
    ------
    pandas.DataFrame
        ``customer_id``, ``probability``, ``band``, ``reasons`` (JSON text).
    """
    for start in range(0, len(features), batch_size):
        X = features.iloc[start : start + batch_size]
        p, contributions = model.explain_proba(X, method=attribution)
        reasons = reasons_json(
            contributions,
            X,
            top_k=top_k,
            language=language,
            context=context,
        )
        yield pd.DataFrame(
            {
                "customer_id": X.index,  # keeps its text dtype: no per-id Python strings
                "probability": p,
                "band": risk_band(p, band_thresholds),
                "reasons": reasons.to_numpy(),
            }
        )


def _insert(conn: Connection, dialect: str, rows: pd.DataFrame) -> None:
    """Bulk-insert score rows the fast way for each engine (see notes/STACK.md)."""
    rows = rows[list(SCORE_COLUMNS)]
    if dialect == "duckdb":
        raw = conn.connection.driver_connection
        raw.register("_crm_score_batch", rows)  # type: ignore[union-attr]
        try:
            cols = ", ".join(SCORE_COLUMNS)
            conn.exec_driver_sql(f"INSERT INTO score ({cols}) SELECT {cols} FROM _crm_score_batch")
        finally:
            raw.unregister("_crm_score_batch")  # type: ignore[union-attr]
    elif dialect == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        copy_sql = f"COPY score ({', '.join(SCORE_COLUMNS)}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(copy_sql) as copy:
            for record in rows.itertuples(index=False, name=None):
                copy.write_row(record)
    else:
        records = cast(list[dict[str, Any]], rows.to_dict("records"))
        conn.execute(insert(SCORE_TABLE), records)


def score_customers(
    store: Store,
    features: pd.DataFrame,
    as_of: str | date | pd.Timestamp,
    *,
    model: str | BoostedClassifier = "crm-churn@champion",
    settings: Settings | None = None,
    model_name: str | None = None,
    batch_size: int = 100_000,
    band_thresholds: tuple[float, float] = DEFAULT_BAND_THRESHOLDS,
    top_k: int = 3,
    language: str = "en",
    tier_names: Mapping[int, str] | None = None,
    attribution: str = "shap",
    scored_at: datetime | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every customer in ``features`` and replace that model's scores for ``as_of``.

    Parameters
    ----------
    features : pandas.DataFrame
        Features as of ``as_of``, indexed by ``customer_id`` (or with that column).
    model : str or BoostedClassifier
        A registry reference (``crm-churn@champion``, ``crm-churn/3``) or a fitted model.
    settings : Settings
        Needed to reach the MLflow registry (and for the currency of reasons).
    model_name : str, optional
        Name written to ``score.model_name``; default the registered name.
    attribution : {"shap", "path"}
        How reasons weigh drivers: exact TreeSHAP, or path attribution. On 2
        cores a million customers take about 25 s with SHAP reasons and 27 s
        with path reasons (``bench/models.py``); the path's top reason is
        SHAP's for about two customers in three.
    progress : bool
        Show a progress bar counting the customers scored (``crm-ml score`` does).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``band`` (high, medium, low): ``customers``, ``mean_probability``.
    """
    fitted, name, version = _resolve_model(model, settings, model_name)
    frame = _keyed(features)
    as_of_dt, stamp = _naive_utc(as_of), scored_at or datetime.now(UTC).replace(tzinfo=None)
    context = PhraseContext(
        currency=settings.currency if settings else "CNY", tier_names=dict(tier_names or {})
    )
    batches = score_batches(
        fitted,
        frame,
        batch_size=batch_size,
        band_thresholds=band_thresholds,
        top_k=top_k,
        language=language,
        context=context,
        attribution=attribution,
    )
    if progress:
        batches = _counted(batches, len(frame), f"scoring {name} v{version}")
    with store.begin() as conn:
        summary = replace_scores(
            conn, batches, model_name=name, as_of=as_of_dt, model_version=version, scored_at=stamp
        )
    log.info("Scored %d customers with %s v%s as of %s", len(frame), name, version, as_of_dt.date())
    return summary


def _counted(batches: Iterator[pd.DataFrame], total: int, desc: str) -> Iterator[pd.DataFrame]:
    with tqdm(total=total, desc=desc, unit="customer", unit_scale=True) as bar:
        for batch in batches:
            bar.update(len(batch))
            yield batch


def replace_scores(
    conn: Connection,
    batches: Iterable[pd.DataFrame],
    *,
    model_name: str,
    as_of: datetime,
    model_version: str,
    scored_at: datetime,
) -> pd.DataFrame:
    """Replace the scores of ``model_name`` as of ``as_of`` with ``batches``.

    Runs inside the caller's transaction (``store.begin()``): the old rows are
    deleted first and the batches inserted one by one, so an error raised by
    the store or by the ``batches`` iterator leaves the previous scores as they
    were once the transaction rolls back.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        A connection inside a transaction; not committed here.
    batches : iterable of pandas.DataFrame
        ``customer_id``, ``probability``, ``band``, ``reasons`` (JSON text),
        as :func:`score_batches` yields them.
    as_of, scored_at : datetime
        Naive UTC.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``band`` (high, medium, low): ``customers``, ``mean_probability``.
    """
    table = SCORE_TABLE
    conn.execute(delete(table).where(table.c.model_name == model_name, table.c.as_of == as_of))
    summary: list[pd.DataFrame] = []
    for batch in batches:
        rows = batch.assign(
            model_name=model_name, as_of=as_of, model_version=model_version, scored_at=scored_at
        )
        _insert(conn, conn.dialect.name, rows)
        summary.append(batch.groupby("band")["probability"].agg(["size", "sum"]))
    return _summarise(summary)


def _summarise(parts: list[pd.DataFrame]) -> pd.DataFrame:
    bands = list(BANDS)
    if not parts:
        return pd.DataFrame(
            {"customers": 0, "mean_probability": np.nan}, index=pd.Index(bands, name="band")
        )
    total = pd.concat(parts).groupby(level=0).sum().reindex(bands, fill_value=0)
    out = pd.DataFrame(
        {
            "customers": total["size"].astype(int),
            "mean_probability": total["sum"] / total["size"].where(total["size"] > 0),
        }
    )
    out.index.name = "band"
    return out


def read_scores(store: Store, *, model_name: str, as_of: str | date | pd.Timestamp) -> pd.DataFrame:
    """Return the stored scores of one model and date, indexed by ``customer_id``.

    Returns
    -------
    pandas.DataFrame
        ``model_version``, ``probability``, ``band``, ``reasons`` (JSON text), ``scored_at``.
    """
    table = SCORE_TABLE
    query = table.select().where(
        table.c.model_name == model_name, table.c.as_of == _naive_utc(as_of)
    )
    with store.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=list(SCORE_COLUMNS))
    cols: list[Any] = ["model_version", "probability", "band", "reasons", "scored_at"]
    return frame.set_index("customer_id")[cols].sort_index()
