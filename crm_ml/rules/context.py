"""Reading what rules need from the store: tags, consent and scores at a date.

Every query filters with bound parameters (tag names, channel, purpose,
dates); customer lists are matched in pandas, never spliced into SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, func, or_, select

from crm_ml.features.identity import chain_depth
from crm_ml.features.spec import as_timestamp as features_as_timestamp
from crm_ml.features.spec import when_text
from crm_ml.rules.compiler import Rule, RuleContext
from crm_ml.rules.vocabulary import SCORE_FIELDS
from crm_ml.store.connection import Store
from crm_ml.store.schema import (
    CONSENT_PROTECTION,
    Consent,
    Customer,
    CustomerMerge,
    CustomerTag,
    Score,
)

log = logging.getLogger(__name__)


def as_timestamp(value: Any, what: str = "as_of") -> datetime:
    """Return ``value`` as a naive UTC :class:`datetime`, the store's canonical form.

    :func:`crm_ml.features.spec.as_timestamp` under the name tags and segments
    import, so that every stage reads a date alike.

    Raises
    ------
    ConfigError
        If it is missing, a number (``20260101`` is not read as nanoseconds since
        1970), or cannot be read as a date.
    """
    return features_as_timestamp(value, what=what)


def valid_at(on: datetime) -> Any:
    """Return the SQL condition that a ``customer_tag`` row is in force at ``on``."""
    return and_(
        CustomerTag.valid_from <= on,
        or_(CustomerTag.valid_to.is_(None), CustomerTag.valid_to > on),
    )


def tag_members_at(conn: Connection, names: Iterable[str], on: datetime) -> dict[str, pd.Index]:
    """Return, for each tag name, the people who have it at ``on``.

    A membership counts for the person, as the features count orders: one held
    by a merged-away record counts for its final survivor (:func:`surviving_ids`).
    ``merge_customers`` moves a merged record's tags to its survivor, but a merge
    imported from a source system moves nothing, and a manual tag left on the old
    record must still match ``tag("vip")``, which is evaluated on survivors. The
    ``customer_tag`` rows stay on the records they were written for: tagging,
    untagging and :func:`crm_ml.tags.apply_tags` open and close those rows, and
    ``tag_history`` shows them.

    Returns
    -------
    dict of str to pandas.Index
        For each name, the sorted surviving ``customer_id`` values, each once.
    """
    wanted = sorted(set(names))
    result: dict[str, pd.Index] = {
        name: pd.Index([], dtype="str", name="customer_id") for name in wanted
    }
    if not wanted:
        return result
    rows = conn.execute(
        select(CustomerTag.tag_id, CustomerTag.customer_id)
        .where(CustomerTag.tag_id.in_(wanted), valid_at(on))
        .distinct()
    ).all()
    frame = pd.DataFrame(rows, columns=["tag", "customer_id"], dtype="str")
    if frame.empty:
        return result
    frame["customer_id"] = to_survivors(frame["customer_id"], surviving_ids(conn))
    for name, group in frame.drop_duplicates().groupby("tag"):
        result[str(name)] = pd.Index(sorted(group["customer_id"]), dtype="str", name="customer_id")
    return result


def surviving_ids(conn: Connection) -> dict[str, str]:
    """Return ``merged_id -> final surviving_id`` for every merged customer, chains followed.

    The merges :func:`crm_ml.features.identity.resolve_id_map` resolves for the
    features, read on this connection: ``customer_merge``, plus the
    ``status='merged'`` customers whose ``merged_into`` it does not list
    (merges imported from a source system). A merge counts whatever its date.

    Raises
    ------
    ValidationError
        If the merges form a cycle (see :func:`crm_ml.features.identity.chain_depth`).
    """
    pointers = {
        str(m): str(s)
        for m, s in conn.execute(select(CustomerMerge.merged_id, CustomerMerge.surviving_id))
    }
    imported = select(Customer.customer_id, Customer.merged_into).where(
        Customer.status == "merged", Customer.merged_into.is_not(None)
    )
    for merged, surviving in conn.execute(imported):
        pointers.setdefault(str(merged), str(surviving))
    pointers = {m: s for m, s in pointers.items() if m != s}
    pairs = pd.DataFrame({"merged_id": list(pointers), "surviving_id": list(pointers.values())})
    chain_depth(pairs)  # refuses a cycle, as the features do
    resolved = {}
    for merged, surviving in pointers.items():
        while surviving in pointers:
            surviving = pointers[surviving]
        resolved[merged] = surviving
    return resolved


def to_survivors(ids: pd.Series, id_map: Mapping[str, str]) -> pd.Series:
    """Return ``ids``, each merged-away id replaced by its survivor (see :func:`surviving_ids`)."""
    if not id_map or ids.empty:
        return ids
    return ids.map(lambda cid: id_map.get(cid, cid)).astype(ids.dtype)


def consent_status_at(
    conn: Connection, channel: str, purpose: str, on: datetime | None
) -> pd.Series:
    """Return each person's consent status for a channel and purpose at ``on``.

    A decision is an event, read as the features read every event: only those
    made before ``on`` count (``updated_at < on``), so a grant made at exactly
    ``on`` is not yet in force, here as in ``consent_<channel>_marketing``.
    ``on=None`` means the latest decision in the store, whenever it was made:
    what a list about to be sent must honour.

    Merged records count as their survivor, as in the features: over all of a
    person's records the latest decision wins, and of decisions made at the
    same instant the most protective (:data:`crm_ml.store.schema.CONSENT_PROTECTION`:
    withdrawn, then unknown, then granted). So a withdrawal on an old,
    merged-away card removes the survivor's earlier grant. People with no
    decision are absent from the result; callers treat them as ``unknown`` (no
    consent).

    Returns
    -------
    pandas.Series
        Indexed by the surviving ``customer_id``: ``granted``, ``withdrawn`` or ``unknown``.
    """
    stmt = select(Consent.customer_id, Consent.updated_at, Consent.status).where(
        Consent.channel == channel, Consent.purpose == purpose
    )
    if on is not None:
        stmt = stmt.where(Consent.updated_at < on)
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame(rows, columns=["customer_id", "updated_at", "status"])
    if frame.empty:
        return pd.Series(
            [], dtype="str", index=pd.Index([], dtype="str", name="customer_id"), name="status"
        )
    frame["customer_id"] = to_survivors(frame["customer_id"].astype("str"), surviving_ids(conn))
    frame["protection"] = frame["status"].map(CONSENT_PROTECTION).fillna(-1)
    latest = (
        frame.sort_values(
            ["customer_id", "updated_at", "protection"], ascending=[True, True, False]
        )
        .groupby("customer_id")
        .tail(1)
    )
    return latest.set_index("customer_id")["status"].astype("str").rename("status")


def latest_score_date(conn: Connection, model_name: str, on: datetime) -> datetime | None:
    """Return the date of ``model_name``'s latest scores computed as of ``on`` or earlier."""
    latest = conn.execute(
        select(func.max(Score.as_of)).where(Score.model_name == model_name, Score.as_of <= on)
    ).scalar()
    return pd.Timestamp(latest).to_pydatetime() if latest is not None else None


def latest_scores(conn: Connection, model_name: str, on: datetime) -> pd.DataFrame:
    """Return the latest batch of a model's scores computed as of ``on`` or earlier.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``; columns ``probability``, ``band``,
        ``reasons`` (JSON text), ``model_version``, ``scored_as_of``. Empty when
        the model has no scores up to ``on``. Scores older than ``on`` are
        returned with a warning: a customer who bought since still looks lapsed.
    """
    batch = latest_score_date(conn, model_name, on)
    columns = ["customer_id", "probability", "band", "reasons", "model_version", "scored_as_of"]
    if batch is None:
        return pd.DataFrame(columns=columns).set_index("customer_id")
    if batch < on:
        _warn_stale(model_name, pd.Timestamp(batch), pd.Timestamp(on))
    rows = conn.execute(
        select(
            Score.customer_id,
            Score.probability,
            Score.band,
            Score.reasons,
            Score.model_version,
            Score.as_of,
        ).where(Score.model_name == model_name, Score.as_of == batch)
    ).all()
    frame = pd.DataFrame(rows, columns=columns).set_index("customer_id")
    frame["probability"] = frame["probability"].astype("float64")
    return frame


def _warn_stale(model_name: str, batch: pd.Timestamp, on: pd.Timestamp) -> None:
    """Warn that scores older than the date are read: who bought since still looks lapsed."""
    log.warning(
        "%s scores are as of %s, %s before %s: rules and lists read them as they were "
        "then. Score again first: `crm-ml score --as-of %s` (scheduled report runs do).",
        model_name,
        when_text(batch),
        _age(on - batch),
        when_text(on),
        f"{on:%Y-%m-%d}",
    )


def _age(delta: pd.Timedelta) -> str:
    count, unit = (delta.days, "day") if delta.days >= 1 else (delta.seconds // 3600, "hour")
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _with_scores(
    conn: Connection, features: pd.DataFrame, names: Iterable[str], on: datetime
) -> pd.DataFrame:
    """Add score columns the rules read and the frame does not already carry."""
    missing = [n for n in sorted(set(names)) if n not in features.columns]
    if not missing:
        return features
    extra: dict[str, pd.Series] = {}
    for model in sorted({SCORE_FIELDS[n][0] for n in missing}):
        scores = latest_scores(conn, model, on)
        if scores.empty:
            log.warning("No %s scores up to %s: rules reading them match no one", model, on)
        for name in missing:
            if SCORE_FIELDS[name][0] == model:
                extra[name] = scores[SCORE_FIELDS[name][1]].reindex(features.index)
    return features.assign(**extra)


def build_context(
    store: Store,
    features: pd.DataFrame,
    as_of: Any,
    rules: Iterable[Rule],
    *,
    tag_overrides: Mapping[str, pd.Index] | None = None,
) -> RuleContext:
    """Load the scores, tags and consents that ``rules`` read, at ``as_of``.

    Parameters
    ----------
    store : Store
        Where tags, consent and scores live.
    features : pandas.DataFrame
        Indexed by ``customer_id``. Score columns already in it (``p_churn`` …)
        are used as they are; missing ones are read from the ``score`` table.
    as_of : datetime-like
        The date the rules are evaluated at.
    rules : iterable of Rule
        The rules to be evaluated.
    tag_overrides : Mapping[str, pandas.Index], optional
        Tag members computed in this run, used instead of the stored history.

    Returns
    -------
    RuleContext
    """
    on = as_timestamp(as_of)
    rules = list(rules)
    overrides = dict(tag_overrides or {})
    tags = {name for rule in rules for name in rule.tags} - set(overrides)
    consents = {pair for rule in rules for pair in rule.consents}
    scores = {name for rule in rules for name in rule.scores}
    with store.connect() as conn:
        frame = _with_scores(conn, features, scores, on)
        members = tag_members_at(conn, tags, on)
        granted = {
            pair: pd.Index(status.index[status == "granted"], name="customer_id")
            for pair in consents
            for status in [consent_status_at(conn, pair[0], pair[1], on)]
        }
    return RuleContext(frame, {**members, **overrides}, granted)


def evaluate_rule(store: Store, rule: Rule, features: pd.DataFrame, as_of: Any) -> pd.Index:
    """Return the customers of ``features`` that match ``rule`` at ``as_of``.

    Returns
    -------
    pandas.Index
        The matching ``customer_id`` values, sorted.
    """
    context = build_context(store, features, as_of, [rule])
    matches = rule.evaluate(context)
    return pd.Index(sorted(matches.index[matches.to_numpy()]), name="customer_id")
