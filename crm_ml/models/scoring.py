"""Score customers with a registered model and write scores and reasons to the store.

``score_customers(store, as_of, model="crm-churn@champion", settings=...)`` builds
the features as of ``as_of`` (or takes them: ``score_customers(store, features,
as_of, ...)``), loads the model from the MLflow registry, scores the features frame in
batches (probability, band, plain-language reasons) and writes them to the
``score`` table in **one transaction**: the rows of that key and ``as_of``
are deleted first, so re-running a date replaces its scores instead of
duplicating them, and a failure leaves the previous scores untouched.

Only the champion writes under the registered name that tags, segments, lists
and reports read; another version's run is kept apart, and a model scores only
the customers its label was defined for (:mod:`crm_ml.models.scoring_targets`),
never one erased on request (:mod:`crm_ml.store.erased`).

Because a re-run deletes that date's scores, ``score_customers`` refuses,
before any work, features that could not be the population at ``as_of``: an
empty frame, a frame built for another date (``features.attrs["as_of"]``), or
one covering fewer customers than the stored run (unless ``allow_fewer=True``).

Reasons are written in ``settings.language`` (``CRM_ML_LANGUAGE``) and name
tiers as the store's ``tier`` table does (the Chinese label in ``zh``).

Bands (``band_thresholds``, default ``(0.7, 0.4)``): ``high`` when the
probability is at least 0.7, ``medium`` from 0.4, ``low`` below. For a churn
model ``high`` is high risk; for a propensity model, a likely buyer.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, func, or_, select, text
from tqdm.auto import tqdm

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features.build import check_features_date
from crm_ml.features.spec import as_timestamp
from crm_ml.models.estimators import BoostedClassifier
from crm_ml.models.phrases import LANGUAGES, PhraseContext
from crm_ml.models.reasons import model_context, reasons_json
from crm_ml.models.scoring_targets import (
    ScoringTarget,
    scored_population,
    scoring_target,
)
from crm_ml.store import Store
from crm_ml.store.bulk import insert_frame
from crm_ml.store.erased import drop_erased, erased_note, lock_out_erasures, rows_not_erased
from crm_ml.store.purges import refuse_purged_date
from crm_ml.store.schema import Customer, CustomerMerge, ErasedCustomer, Score
from crm_ml.store.tiers import tier_names_from_store

log = logging.getLogger(__name__)

DEFAULT_BAND_THRESHOLDS = (0.7, 0.4)
#: The bands :func:`risk_band` gives, highest first; tags and segments select on them.
BANDS = ("high", "medium", "low")
SCORE_TABLE = cast(Table, Score.__table__)
#: The score table's columns and their store kinds, for the bulk writer.
SCORE_KINDS = {
    "model_name": "text",
    "as_of": "timestamp",
    "customer_id": "text",
    "model_version": "text",
    "probability": "float",
    "band": "text",
    "reasons": "text",
    "scored_at": "timestamp",
}
SCORE_COLUMNS = tuple(SCORE_KINDS)


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


def day_text(moment: datetime) -> str:
    """Return ``2026-01-01``, or ``2026-01-01 06:30`` when the time is not midnight."""
    return (
        f"{moment:%Y-%m-%d}" if moment.time() == datetime.min.time() else f"{moment:%Y-%m-%d %H:%M}"
    )


def _check_not_empty(frame: pd.DataFrame, model: str, as_of: datetime) -> None:
    if frame.empty:
        raise ValidationError(
            f"No customers to score with {model} as of {day_text(as_of)}: the features frame is "
            "empty, and scoring it would delete every stored score of that model and date. "
            "Expected customer_features(store, as_of); it is empty for a date before the "
            "store's data starts."
        )


def _features_to_score(features: pd.DataFrame, as_of: datetime, model: str) -> pd.DataFrame:
    """Return ``features`` keyed by ``customer_id``, refusing a frame that cannot be scored."""
    check_features_date(features, as_of, use="scored")
    frame = _keyed(features)
    _check_not_empty(frame, model, as_of)
    return frame


def _reasons_language(language: str | None, settings: Settings | None) -> str:
    """Return ``language``, else ``settings.language`` (``CRM_ML_LANGUAGE``), else ``zh``."""
    chosen = language or (settings.language if settings else "zh")
    if chosen not in LANGUAGES:
        raise ValidationError(f"language must be one of {', '.join(LANGUAGES)}, got {chosen!r}.")
    return chosen


def _check_model_name(model_name: str, *, writing: bool = False) -> None:
    """Refuse a registry reference where a plain name belongs in ``score.model_name``.

    Shadow keys (``crm-churn@challenger``) are made from the reference scored,
    never given: a given one could name a version other than the one scoring.
    """
    if "@" in model_name or "/" in model_name:
        name = model_name.removeprefix("models:/").split("@")[0].split("/")[0]
        advice = (
            "Leave model_name out: the champion's scores are then stored under "
            f"model_name={name!r} and another version's under the reference it was scored with."
            if writing
            else f"Pass model_name={name!r}."
        )
        raise ValidationError(
            f"model_name={model_name!r} is a registry reference; the champion's scores are "
            f"stored under the model's name alone, whichever version made them (the "
            f"model_version column says which). {advice}"
        )


def _check_production_name(target: ScoringTarget, model_name: str | None) -> None:
    """Refuse to write a version that is not the champion under the name tags and lists read."""
    if model_name != target.name or target.is_champion:
        return
    champion = f"version {target.champion}" if target.champion else "none yet"
    raise ValidationError(
        f"model_name={model_name!r} holds the champion's scores, which tags, segments, lists "
        f"and reports read; {target.reference} is version {target.version} and the champion "
        f"is {champion}. Leave model_name out to keep its scores apart as "
        f"{target.key!r}, or make it champion first "
        f"(`crm-ml models promote {target.name} {target.version} --reason ...`)."
    )


def _stored_population(conn: Connection, model_name: str, as_of: datetime) -> int:
    """Count the stored scores of a run whose customers are still in the population at ``as_of``.

    Customers merged away since (or, in odd data, created after ``as_of``) have
    left the population that ``customer_features`` returns, and erased ones are
    never scored, so a full re-score legitimately drops their scores; ids the
    store does not know still count.
    """
    table = SCORE_TABLE
    gone = select(Customer.customer_id).where(
        or_(Customer.status != "active", Customer.created_at >= as_of)
    )
    query = (
        select(func.count())
        .select_from(table)
        .where(
            table.c.model_name == model_name,
            table.c.as_of == as_of,
            table.c.customer_id.not_in(gone),
            table.c.customer_id.not_in(select(CustomerMerge.merged_id)),
            table.c.customer_id.not_in(select(ErasedCustomer.customer_id)),
        )
    )
    return int(conn.execute(query).scalar_one())


def _stored_among(conn: Connection, model_name: str, as_of: datetime, ids: pd.Index) -> int:
    """Count the stored scores of a run that belong to ``ids``."""
    table = SCORE_TABLE
    query = select(table.c.customer_id).where(
        table.c.model_name == model_name, table.c.as_of == as_of
    )
    stored = pd.Index(conn.execute(query).scalars().all(), dtype="str")
    return int(stored.isin(ids).sum())


def _refuse_fewer_customers(
    conn: Connection, model_name: str, as_of: datetime, customers: int, left_out: pd.Index
) -> None:
    """Refuse to replace a stored run with scores for fewer customers (a partial frame).

    Customers the model no longer scores (``left_out``: a run made before the
    churn model left out never-buyers scored them) legitimately lose their
    scores, so they are not counted. Reading the run's ids is needed only then.
    """
    stored = _stored_population(conn, model_name, as_of)
    if customers < stored and len(left_out):
        stored -= _stored_among(conn, model_name, as_of, left_out)
    if customers < stored:
        raise ValidationError(
            f"{model_name} already has {stored:,} scores as of {day_text(as_of)}, and these "
            f"features cover {customers:,} customers: re-scoring replaces the whole run, so the "
            f"scores of at least {stored - customers:,} others would be deleted. Score the whole "
            "population (customer_features(store, as_of)), or pass allow_fewer=True if fewer "
            "customers is intended."
        )


def _phrase_context(
    store: Store, settings: Settings | None, language: str, tier_names: Mapping[int, str] | None
) -> PhraseContext:
    names = tier_names_from_store(store, language=language) if tier_names is None else tier_names
    return PhraseContext(currency=settings.currency if settings else "CNY", tier_names=dict(names))


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


ModelRef = str | ScoringTarget | BoostedClassifier


def _model_label(model: ModelRef, model_name: str | None) -> str:
    """Name ``model`` in messages before it is loaded: the registry reference, or its name."""
    if isinstance(model, ScoringTarget):
        return model.reference
    if not isinstance(model, BoostedClassifier):
        return str(model)
    return model_name or ("crm-churn" if model.target == "churn" else "crm-propensity")


def _resolve_model(
    model: ModelRef, settings: Settings | None, model_name: str | None
) -> tuple[BoostedClassifier, str, str]:
    """Return the fitted model, the ``score.model_name`` to write and the version."""
    if isinstance(model, BoostedClassifier):
        return model, _model_label(model, model_name), "local"
    if settings is None:
        raise ValidationError(
            f"Loading {_model_label(model, None)!r} from the registry needs settings "
            "(the MLflow store)."
        )
    from crm_ml.models.tracking import load_model

    target = model if isinstance(model, ScoringTarget) else scoring_target(model, settings)
    _check_production_name(target, model_name)
    loaded = load_model(target.uri, settings)
    return loaded.model, model_name or target.key, loaded.version


def _population_to_score(
    frame: pd.DataFrame, model: BoostedClassifier, name: str, as_of: datetime
) -> tuple[pd.DataFrame, pd.Index]:
    """Split ``frame`` into the customers ``model`` scores and the ids it leaves out.

    Raises
    ------
    ValidationError
        If no customer is in the model's population: the stored run would be
        deleted and nothing written in its place.
    """
    population = scored_population(model)
    if population is None:
        return frame, frame.index[:0]
    inside = population.mask(frame)
    if not inside.any():
        raise ValidationError(
            f"No customers to score with {name} as of {day_text(as_of)}: a {population.score} "
            f"model scores only customers with {population.condition}, and none of the "
            f"{len(frame):,} in the features has. Is as_of before the first order?"
        )
    return frame[inside], frame.index[~inside]


def _not_erased(
    store: Store, frame: pd.DataFrame, model: str, as_of: datetime
) -> tuple[pd.DataFrame, pd.Index]:
    """Split ``frame`` into the customers that may be scored and those erased on request.

    Raises
    ------
    ValidationError
        If every customer in ``frame`` was erased: the stored run would be deleted
        and nothing written in its place.
    """
    kept, erased = drop_erased(store, frame)
    if kept.empty:
        raise ValidationError(
            f"No customers to score with {model} as of {day_text(as_of)}: all {len(frame):,} in "
            "the features were erased on request, and an erased customer is never scored. Expected "
            "customer_features(store, as_of), the whole population."
        )
    return kept, erased


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
    context = model_context(model, context)
    for start in range(0, len(features), batch_size):
        X = features.iloc[start : start + batch_size]
        p, contributions = model.explain_proba(X, method=attribution)
        reasons = reasons_json(
            contributions,
            X,
            top_k=top_k,
            language=language,
            context=context,
            probability=p,
            target=model.target,  # reasons worded for the way they push this model's score
        )
        yield pd.DataFrame(
            {
                "customer_id": X.index,  # keeps its text dtype: no per-id Python strings
                "probability": p,
                "band": risk_band(p, band_thresholds),
                "reasons": reasons.array,
            }
        )


def _features_and_date(
    store: Store,
    features: pd.DataFrame | str | date,
    as_of: str | date | pd.Timestamp | None,
    progress: bool,
) -> tuple[pd.DataFrame, str | date | pd.Timestamp]:
    """Return the features to score and their date; ``(store, as_of)`` builds the features."""
    if isinstance(features, pd.DataFrame):
        if as_of is None:
            raise ValidationError(
                "score_customers needs the date of the features: "
                "score_customers(store, features, as_of), or score_customers(store, as_of) "
                "to build them from the store."
            )
        return features, as_of
    if as_of is not None:
        raise ValidationError(
            "score_customers takes score_customers(store, as_of) or "
            "score_customers(store, features, as_of) with features a DataFrame of "
            f"customer_features; got {type(features).__name__} {features!r} and as_of {as_of!r}."
        )
    from crm_ml.features import customer_features

    return customer_features(store, features, progress=progress), features


def score_customers(
    store: Store,
    features: pd.DataFrame | str | date,
    as_of: str | date | pd.Timestamp | None = None,
    *,
    model: ModelRef = "crm-churn@champion",
    settings: Settings | None = None,
    model_name: str | None = None,
    batch_size: int = 100_000,
    band_thresholds: tuple[float, float] = DEFAULT_BAND_THRESHOLDS,
    top_k: int = 3,
    language: str | None = None,
    tier_names: Mapping[int, str] | None = None,
    attribution: str = "shap",
    scored_at: datetime | None = None,
    progress: bool = False,
    allow_fewer: bool = False,
) -> pd.DataFrame:
    """Score the customers in ``features`` and replace that key's scores for ``as_of``.

    ``score_customers(store, as_of)`` builds the features itself, as
    ``customer_features(store, as_of)``; pass them (``score_customers(store,
    features, as_of)``) to score several models on one build.

    Parameters
    ----------
    features : pandas.DataFrame, or the date when ``as_of`` is left out
        Features as of ``as_of``, indexed by ``customer_id`` (or with that column):
        the whole population, as ``customer_features(store, as_of)`` returns it.
        A churn model scores only those who bought before ``as_of``
        (:data:`CHURN_POPULATION`); the others get no score, nor does anyone
        erased on request (``crm-ml customers erase``).
    model : str, ScoringTarget or BoostedClassifier
        A registry reference (``crm-churn@champion``, ``crm-churn@challenger``,
        ``crm-churn/3``), one resolved by :func:`scoring_target`, or a fitted model.
    settings : Settings
        Needed to reach the MLflow registry; gives the language and currency of reasons.
    model_name : str, optional
        Name written to ``score.model_name``. By default the registered name when
        the reference resolves to the champion, else the reference itself
        (``crm-churn@challenger``, ``crm-churn/5``: a shadow run, which tags, segments,
        lists and reports do not read); for a fitted model, ``crm-churn`` or
        ``crm-propensity``. A version that is not the champion is refused the
        registered name.
    language : {"zh", "en"}, optional
        Language of the reasons; default ``settings.language`` (``CRM_ML_LANGUAGE``),
        or ``zh`` (the settings' default) without settings.
    tier_names : mapping, optional
        Tier level -> name for reasons; default the store's ``tier`` table
        (:func:`~crm_ml.store.tiers.tier_names_from_store`).
    attribution : {"shap", "path"}
        How reasons weigh drivers: exact TreeSHAP, or path attribution. On 2
        cores a million customers take about 16–18 s with SHAP reasons and
        19–23 s with path reasons (``bench/models.py``); the path's top reason is
        SHAP's for about two customers in three.
    progress : bool
        Show a progress bar counting the customers scored (``crm-ml score`` does).
    allow_fewer : bool
        Replace a stored run of this key and date even when ``features`` covers
        fewer customers than it, e.g. to keep only a subset's scores on purpose.
        Off by default: the other customers' scores would be deleted. Customers
        merged away or erased since the run, or no longer in the model's
        population, are not counted, so a full re-score needs no opt-in.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``band`` (high, medium, low): ``customers``, ``mean_probability``.
        Its ``attrs`` say what was written: ``model_name`` (the key),
        ``model_version``, ``left_out`` (customers in ``features`` outside the
        model's population, who have no score) and ``left_out_note`` (saying so
        and why; empty when none), ``erased`` (customers in ``features`` erased on
        request, never scored) and ``erased_note`` (likewise).

    Raises
    ------
    ConfigError
        If ``as_of`` is not a date.
    ValidationError
        Before any work, if ``features`` is a frame without ``as_of``, is empty,
        was built for another date (``features.attrs["as_of"]``) or holds a
        customer twice, every customer
        in it was erased, ``language`` is unknown, ``model_name`` would put a
        non-champion's scores where the champion's belong, or no customer is in
        the model's population; before any score is written, if it covers fewer
        customers than the stored run (see ``allow_fewer``).
    """
    if not isinstance(features, pd.DataFrame) and isinstance(model, str) and settings:
        model = scoring_target(model, settings)  # a mistyped name fails before the build
    features, as_of = _features_and_date(store, features, as_of, progress)
    as_of_dt = as_timestamp(as_of)
    label = _model_label(model, model_name)
    frame, erased = _not_erased(
        store, _features_to_score(features, as_of_dt, label), label, as_of_dt
    )
    language = _reasons_language(language, settings)
    if model_name is not None:
        _check_model_name(model_name, writing=True)
    fitted, name, version = _resolve_model(model, settings, model_name)
    frame, left_out = _population_to_score(frame, fitted, name, as_of_dt)
    batches = score_batches(
        fitted,
        frame,
        batch_size=batch_size,
        band_thresholds=band_thresholds,
        top_k=top_k,
        language=language,
        context=_phrase_context(store, settings, language, tier_names),
        attribution=attribution,
    )
    if progress:
        batches = _counted(batches, len(frame), f"scoring {name} v{version}")
    stamp = scored_at or datetime.now(UTC).replace(tzinfo=None)
    erased_meanwhile = [0]
    with store.begin() as conn:
        refuse_purged_date(conn, as_of_dt, what=f"{name} scores")
        lock_scores(conn, name, as_of_dt)  # before counting, so the count is the latest run's
        if not allow_fewer:
            _refuse_fewer_customers(conn, name, as_of_dt, len(frame), left_out)
        batches = rows_not_erased(batches, lock_out_erasures(conn), erased_meanwhile)
        summary = replace_scores(
            conn, batches, model_name=name, as_of=as_of_dt, model_version=version, scored_at=stamp
        )
    day = day_text(as_of_dt)
    log.info("Scored %d customers with %s v%s as of %s", len(frame), name, version, day)
    erased_count = len(erased) + erased_meanwhile[0]
    return _with_run_attrs(summary, name, version, fitted, (len(left_out), erased_count))


def _with_run_attrs(
    summary: pd.DataFrame,
    name: str,
    version: str,
    model: BoostedClassifier,
    left_out: tuple[int, int],
) -> pd.DataFrame:
    """Record on ``summary`` the key written and who was left out, for the caller to say.

    ``left_out`` counts the customers outside the model's population, then the erased ones.
    """
    outside, erased = left_out
    population = scored_population(model)
    note = population.note(outside) if population is not None and outside else ""
    erased_text = erased_note(erased, f"the {name} scores")
    for said in (note, erased_text):
        if said:
            log.info("%s", said)
    summary.attrs.update(
        model_name=name,
        model_version=version,
        left_out=outside,
        left_out_note=note,
        erased=erased,
        erased_note=erased_text,
    )
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
    were once the transaction rolls back. Two runs for the same model and date
    take turns (:func:`lock_scores`): the later one replaces the earlier one's rows.

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
    lock_scores(conn, model_name, as_of)
    conn.execute(delete(table).where(table.c.model_name == model_name, table.c.as_of == as_of))
    summary: list[pd.DataFrame] = []
    for batch in batches:
        rows = batch.assign(
            model_name=model_name, as_of=as_of, model_version=model_version, scored_at=scored_at
        )
        insert_frame(conn, SCORE_TABLE.name, rows[list(SCORE_COLUMNS)], SCORE_KINDS)
        summary.append(batch.groupby("band")["probability"].agg(["size", "sum"]))
    return _summarise(summary)


def lock_scores(conn: Connection, model_name: str, as_of: datetime) -> None:
    """Make concurrent replacements of one model's scores for ``as_of`` take turns.

    On PostgreSQL two runs would both delete (nothing yet) and then insert, and
    the second would fail on the primary key once the first commits. A
    transaction-scoped advisory lock on (model, as_of) makes the second wait
    until the first commits; its delete then sees and replaces those rows.
    DuckDB and SQLite allow one writer at a time anyway.
    """
    if conn.dialect.name != "postgresql":
        return
    key = f"crm_ml.score|{model_name}|{as_of.isoformat()}"
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


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

    Parameters
    ----------
    model_name : str
        The key scores are stored under: ``crm-churn`` for the champion's (not
        ``crm-churn@champion``), or a shadow run's reference such as
        ``crm-churn@challenger`` or ``crm-churn/5``.

    Returns
    -------
    pandas.DataFrame
        ``model_version``, ``probability``, ``band``, ``reasons`` (JSON text),
        ``scored_at``; empty when the model has no scores at ``as_of``.

    Raises
    ------
    ValidationError
        If ``model_name`` names the champion by reference (``@champion``, ``models:/``)
        and nothing is stored under it.
    NotFoundError
        If no scores at all are stored under ``model_name`` (listing the names that have some).
    ConfigError
        If ``as_of`` is not a date.
    """
    table = SCORE_TABLE
    query = table.select().where(
        table.c.model_name == model_name, table.c.as_of == as_timestamp(as_of)
    )
    with store.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=list(SCORE_COLUMNS))
        if frame.empty:
            _require_scored_model(conn, model_name)
    cols: list[Any] = ["model_version", "probability", "band", "reasons", "scored_at"]
    return frame.set_index("customer_id")[cols].sort_index()


def _require_scored_model(conn: Connection, model_name: str) -> None:
    """Refuse a model name with no scores at any date, listing the names that have some."""
    table = SCORE_TABLE
    names = sorted(conn.execute(select(table.c.model_name).distinct()).scalars())
    if model_name in names:
        return
    if model_name.startswith("models:/") or model_name.endswith("@champion"):
        _check_model_name(model_name)  # the champion's scores are under the name alone
    close = difflib.get_close_matches(model_name, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise NotFoundError(
        f"No scores are stored for model {model_name!r}; models with scores: "
        f"{', '.join(names) or 'none'}.{hint} Scores are written by score_customers "
        "(`crm-ml score`): the champion's under the registered name, another version's "
        "under the reference it was scored with (`crm-ml score --model crm-churn@challenger` "
        "writes crm-churn@challenger)."
    )
