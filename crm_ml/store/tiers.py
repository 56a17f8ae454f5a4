"""Loyalty tiers: which tier each customer qualifies for, and the history of moves.

A customer's tier at ``as_of`` is the highest tier whose ``min_spend_12m`` their
**rolling 12-month net spend** reaches: orders with ``as_of - 12 months <=
ordered_at < as_of``, net of refunds recorded (``refunded_at``) before ``as_of``. A
refund without a ``refunded_at`` is not counted, since it cannot be placed in time.

Thresholds must rise strictly with level and the lowest tier must start at 0, so
every customer has exactly one tier. A customer's tier *before* a date is the
``to_tier`` of their last ``tier_change`` strictly before it (as in
:mod:`crm_ml.analysis.tiers`); :func:`apply_tier_changes` records moves at
``changed_at = as_of``, and only for a date the store's data covers: from its
first customer or order, until its last order leaves the 12-month window.

Many programmes protect a tier for a year (保级): with ``review_days`` set,
upgrades still happen at once, but a customer is only reviewed for a downgrade
once their last tier change is at least ``review_days`` old, and then moves
down one tier at most. The demo retailer (:mod:`crm_ml.demo`) follows this rule
with ``review_days=365``, evaluated on the first of each month. One difference:
the demo restarts the clock at a review that keeps the tier, while the store
records only changes, so here a customer kept at one review is reviewed again
at the next evaluation.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store._timestamps import as_store_time
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store
from crm_ml.store.schema import Base, Tier

log = logging.getLogger(__name__)

TIER_COLUMNS = ("net_spend_12m", "tier_id", "tier_name", "tier_level")
CHANGE_COLUMNS = ("customer_id", "changed_at", "from_tier", "to_tier", "direction", "reason")
DEFAULT_REASON = "rolling 12-month net spend"

_T = Base.metadata.tables


@dataclass(frozen=True)
class TierLevel:
    """One tier: an id, a name, its level (higher is better) and its spend threshold."""

    tier_id: str
    name: str
    level: int
    min_spend_12m: float
    label: str | None = None


def _check_unique(tiers: tuple[TierLevel, ...], attribute: str) -> None:
    seen: dict[Any, str] = {}
    for tier in tiers:
        value = getattr(tier, attribute)
        if value in seen:
            raise ConfigError(
                f"Tiers {seen[value]} and {tier.tier_id} have the same {attribute} {value}: "
                f"each tier needs its own {attribute}, or a customer would qualify for both."
            )
        seen[value] = tier.tier_id


def _check_thresholds(tiers: tuple[TierLevel, ...]) -> None:
    for tier in tiers:
        if not tier.min_spend_12m >= 0:
            raise ConfigError(
                f"Tier {tier.tier_id} has min_spend_12m={tier.min_spend_12m}; "
                "expected a number >= 0."
            )
    for lower, higher in itertools.pairwise(tiers):
        if higher.min_spend_12m < lower.min_spend_12m:
            raise ConfigError(
                f"Tier {higher.tier_id} (level {higher.level}) starts at {higher.min_spend_12m}, "
                f"below {lower.tier_id} (level {lower.level}) at {lower.min_spend_12m}: the tiers "
                "overlap. Thresholds must rise with level."
            )
    if tiers[0].min_spend_12m != 0:
        raise ConfigError(
            f"The lowest tier {tiers[0].tier_id} starts at {tiers[0].min_spend_12m}; it must start "
            "at 0 so that every customer has a tier. Add a base tier at 0."
        )


@dataclass(frozen=True)
class TierPolicy:
    """Tiers ordered by level, checked so that every spend falls in exactly one tier.

    Build one with :meth:`from_records` (a list) or :meth:`from_store` (the ``tier`` table).

    Raises
    ------
    ConfigError
        If there are no tiers, ids / levels / thresholds repeat, thresholds do not
        rise with level, the lowest threshold is not 0, or ``review_days`` is not
        a positive number of days.

    Attributes
    ----------
    tiers : tuple of TierLevel
        Sorted by level.
    review_days : int, optional
        Tier protection: downgrades wait until the last change is this many
        days old, and go down one tier at a time. None: the tier follows the
        spend both ways at every evaluation.
    """

    tiers: tuple[TierLevel, ...]
    review_days: int | None = None

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.tiers, key=lambda t: t.level))
        if not ordered:
            raise ConfigError(
                "No tiers are defined: load the tier table (tier_id, name, level, min_spend_12m), "
                "e.g. crm-ml import tier tiers.csv, "
                "or pass policy=TierPolicy.from_records([...])."
            )
        for attribute in ("tier_id", "level", "min_spend_12m"):
            _check_unique(ordered, attribute)
        _check_thresholds(ordered)
        if self.review_days is not None and not self.review_days > 0:
            raise ConfigError(
                f"review_days must be a positive number of days (e.g. 365), "
                f"got {self.review_days!r}."
            )
        object.__setattr__(self, "tiers", ordered)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any] | TierLevel], *, review_days: int | None = None
    ) -> TierPolicy:
        """Build a policy from mappings with ``tier_id``, ``name``, ``level``, ``min_spend_12m``."""
        names = {f.name for f in fields(TierLevel)}
        tiers = []
        for record in records:
            if isinstance(record, TierLevel):
                tiers.append(record)
                continue
            missing = sorted({"tier_id", "name", "level", "min_spend_12m"} - set(record))
            if missing:
                raise ConfigError(f"Tier {dict(record)} lacks {', '.join(missing)}.")
            values = {k: v for k, v in record.items() if k in names}
            tiers.append(
                TierLevel(
                    tier_id=str(values["tier_id"]),
                    name=str(values["name"]),
                    level=int(values["level"]),
                    min_spend_12m=float(values["min_spend_12m"]),
                    label=values.get("label"),
                )
            )
        return cls(tuple(tiers), review_days)

    @classmethod
    def from_store(cls, store: Store, *, review_days: int | None = None) -> TierPolicy:
        """Read the policy from the store's ``tier`` table."""
        with store.connect() as conn:
            check_store(conn)
            return _read_policy(conn, review_days)

    def level_of(self, tier_id: str) -> int:
        """Return the level of ``tier_id``.

        Raises
        ------
        ConfigError
            If the policy has no such tier.
        """
        for tier in self.tiers:
            if tier.tier_id == tier_id:
                return tier.level
        raise ConfigError(
            f"Tier {tier_id!r} is not in the policy ({', '.join(t.tier_id for t in self.tiers)}); "
            "a tier recorded in tier_change was removed from the tier table. Restore it."
        )

    def assign(self, spend: pd.Series) -> pd.DataFrame:
        """Each customer's tier for a rolling 12-month spend.

        Returns
        -------
        pandas.DataFrame
            Same index as ``spend``; columns ``net_spend_12m``, ``tier_id``,
            ``tier_name``, ``tier_level``.
        """
        thresholds = pd.Series([t.min_spend_12m for t in self.tiers])
        position = thresholds.searchsorted(spend.to_numpy(), side="right") - 1
        chosen = [self.tiers[max(int(p), 0)] for p in position]
        return pd.DataFrame(
            {
                "net_spend_12m": spend.astype("float64"),
                "tier_id": pd.Series([t.tier_id for t in chosen], index=spend.index, dtype="str"),
                "tier_name": pd.Series([t.name for t in chosen], index=spend.index, dtype="str"),
                "tier_level": pd.Series(
                    [t.level for t in chosen], index=spend.index, dtype="int64"
                ),
            }
        )


def _read_policy(conn: Connection, review_days: int | None = None) -> TierPolicy:
    tier = _T["tier"]
    found = [dict(r) for r in conn.execute(select(tier)).mappings()]
    return TierPolicy.from_records(found, review_days=review_days)


# --------------------------------------------------------------------------- evaluating


def window_start(as_of: datetime) -> datetime:
    """Start of the rolling 12-month window ending at ``as_of`` (same day, a year earlier)."""
    return (pd.Timestamp(as_of) - pd.DateOffset(months=12)).to_pydatetime()


def _population(conn: Connection, as_of: datetime, members_only: bool) -> pd.Index:
    customer = _T["customer"]
    query = select(customer.c.customer_id).where(
        customer.c.status == "active", customer.c.created_at < as_of
    )
    if members_only:
        query = query.where(
            customer.c.is_member.is_(True),
            (customer.c.member_since.is_(None)) | (customer.c.member_since < as_of),
        )
    ids = sorted(str(c) for c in conn.execute(query).scalars())
    return pd.Index(ids, dtype="str", name="customer_id")


def _sums(conn: Connection, query: Any) -> pd.Series:
    found = conn.execute(query).all()
    # Engines return Decimal / float for sums: cast to float64.
    return pd.Series({str(c): float(v or 0.0) for c, v in found}, dtype="float64")


def net_spend_12m(conn: Connection, as_of: datetime) -> pd.Series:
    """Sum each buyer's rolling 12-month spend, net of refunds made before ``as_of``.

    Returns
    -------
    pandas.Series
        ``float64`` named ``net_spend_12m``, indexed by ``customer_id``.
    """
    orders, item = _T["orders"], _T["order_item"]
    start = window_start(as_of)
    in_window = (orders.c.ordered_at >= start) & (orders.c.ordered_at < as_of)
    paid = select(orders.c.customer_id, func.sum(orders.c.net_amount)).where(in_window)
    refunded = (
        select(orders.c.customer_id, func.sum(item.c.refund_amount))
        .select_from(item.join(orders, item.c.order_id == orders.c.order_id))
        .where(in_window, item.c.refunded_at < as_of, item.c.refund_amount > 0)
    )
    spend = _sums(conn, paid.group_by(orders.c.customer_id))
    refunds = _sums(conn, refunded.group_by(orders.c.customer_id))
    net = spend.sub(refunds, fill_value=0.0).clip(lower=0.0)
    return net.rename("net_spend_12m").rename_axis("customer_id")


def _evaluate(
    conn: Connection, as_of: datetime, policy: TierPolicy | None, members_only: bool
) -> pd.DataFrame:
    policy = policy or _read_policy(conn)
    population = _population(conn, as_of, members_only)
    spend = net_spend_12m(conn, as_of).reindex(population, fill_value=0.0)
    return policy.assign(spend)


def evaluate_tiers(
    store: Store,
    as_of: datetime | str,
    *,
    policy: TierPolicy | None = None,
    members_only: bool = True,
) -> pd.DataFrame:
    """Each customer's tier at ``as_of`` from their rolling 12-month net spend.

    Parameters
    ----------
    store : Store
        The store.
    as_of : datetime or str
        Spend strictly before it counts (naive means UTC).
    policy : TierPolicy, optional
        Tiers to use; the store's ``tier`` table when omitted.
    members_only : bool
        Only loyalty members (``is_member``, joined before ``as_of``); all active
        customers created before ``as_of`` when False.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), columns ``net_spend_12m`` (float64),
        ``tier_id``, ``tier_name`` (str) and ``tier_level`` (int64).

    Raises
    ------
    ConfigError
        If no policy is given and the tier table is empty or inconsistent.
    """
    at = as_store_time(as_of, name="as_of")
    with store.connect() as conn:
        check_store(conn)
        return _evaluate(conn, at, policy, members_only)


# --------------------------------------------------------------------------- recording moves


def _data_span(conn: Connection) -> tuple[datetime | None, datetime | None]:
    """Return (first customer created or order placed, last order placed), naive UTC."""
    customer, orders = _T["customer"], _T["orders"]
    first_customer = conn.execute(select(func.min(customer.c.created_at))).scalar()
    first_order, last_order = conn.execute(
        select(func.min(orders.c.ordered_at), func.max(orders.c.ordered_at))
    ).one()
    firsts = [t for t in (first_customer, first_order) if t is not None]
    return (min(firsts) if firsts else None), last_order


def _refuse_dates_outside_the_data(conn: Connection, as_of: datetime) -> None:
    """Refuse an ``as_of`` the store's data does not cover, before anything is written.

    Before the first customer or order there is no one to hold a tier. The bound
    after the data is the spend window, not ``review_days``: once the last order
    has left the 12 months before ``as_of``, every member's spend is 0 and every
    member above the base tier is demoted (straight to it, or a tier at each
    review when protected). That is a mistyped date or orders not loaded yet,
    never a review; ``review_days`` only delays downgrades, and without it there
    would be no bound.
    """
    first, last = _data_span(conn)
    if first is None or last is None:
        raise ValidationError(
            f"Cannot record tier changes at {as_of:%Y-%m-%d}: tiers follow 12-month spend, and "
            f"the store has {'no customers or orders' if first is None else 'no orders'}. "
            "Load them with `crm-ml import`."
        )
    if as_of < first:
        raise ValidationError(
            f"Cannot record tier changes at {as_of:%Y-%m-%d}: it is before the store's data "
            f"starts (first customer or order {first:%Y-%m-%d %H:%M} UTC), so no member holds "
            f"a tier yet. Use a date from {_next_midnight(first):%Y-%m-%d} on."
        )
    if window_start(as_of) > last:
        latest = (pd.Timestamp(last) + pd.DateOffset(months=12)).to_pydatetime()
        raise ValidationError(
            f"Cannot record tier changes at {as_of:%Y-%m-%d}: it is {(as_of - last).days} days "
            f"after the last recorded order ({last:%Y-%m-%d %H:%M} UTC), so the 12 months of "
            "spend that tiers follow hold no orders and every member would be rated as spending "
            f"nothing. Expected a date by {latest:%Y-%m-%d} (12 months after it); if there are "
            "newer orders, load them first (`crm-ml import orders FILE`)."
        )


def _next_midnight(moment: datetime) -> datetime:
    """Return the first midnight at or after ``moment``."""
    day = datetime.combine(moment.date(), datetime.min.time())
    return day if day == moment else day + timedelta(days=1)


def _refuse_back_dating(conn: Connection, as_of: datetime) -> None:
    change = _T["tier_change"]
    later = conn.execute(
        select(func.count(), func.max(change.c.changed_at)).where(change.c.changed_at > as_of)
    ).one()
    if later[0]:
        raise ValidationError(
            f"tier_change already holds {later[0]} change(s) after {as_of} (latest {later[1]}); "
            "tier changes are recorded in date order. Apply a date on or after the latest."
        )


def _current_tiers(conn: Connection, as_of: datetime) -> tuple[pd.DataFrame, set[str]]:
    """Each customer's tier just before ``as_of`` and since when; who changed at ``as_of``.

    Returns
    -------
    (current, done)
        ``current`` is indexed by ``customer_id`` with ``to_tier`` and ``changed_at``.
    """
    change = _T["tier_change"]
    query = select(change.c.customer_id, change.c.changed_at, change.c.to_tier).where(
        change.c.changed_at <= as_of
    )
    found = pd.DataFrame(
        conn.execute(query).all(), columns=["customer_id", "changed_at", "to_tier"]
    )
    found["customer_id"] = found["customer_id"].astype(str)
    done = set(found.loc[found["changed_at"] == as_of, "customer_id"])
    before = found[found["changed_at"] < as_of].sort_values(["customer_id", "changed_at"])
    last = before.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    return last[["to_tier", "changed_at"]], done


def _protected(
    evaluated: pd.DataFrame, current: pd.DataFrame, policy: TierPolicy, as_of: datetime
) -> pd.DataFrame:
    """Apply tier protection: a downgrade only at a review, and one tier at most."""
    if policy.review_days is None or current.empty:
        return evaluated
    previous = current["to_tier"].reindex(evaluated.index)
    for tier_id in previous.dropna().unique():
        policy.level_of(str(tier_id))  # a clear error for a tier not in the policy
    by_id = {t.tier_id: t for t in policy.tiers}
    level_before = previous.map({t: tier.level for t, tier in by_id.items()})
    falling = (evaluated["tier_level"] < level_before).to_numpy()
    if not falling.any():
        return evaluated
    age = pd.Timestamp(as_of) - current["changed_at"].reindex(evaluated.index)
    due = (age >= pd.Timedelta(days=policy.review_days)).to_numpy()
    # One tier down; the lowest tier stays where it is (tiers are sorted by level).
    below = {t.tier_id: policy.tiers[max(i - 1, 0)].tier_id for i, t in enumerate(policy.tiers)}
    target = np.where(due, previous.map(below), previous)[falling]
    evaluated = evaluated.copy()
    rows = evaluated.index[falling]
    evaluated.loc[rows, "tier_id"] = target
    evaluated.loc[rows, "tier_name"] = [by_id[t].name for t in target]
    evaluated.loc[rows, "tier_level"] = [by_id[t].level for t in target]
    return evaluated


def _moves(
    evaluated: pd.DataFrame, current: pd.Series, policy: TierPolicy, as_of: datetime, reason: str
) -> list[dict[str, Any]]:
    rows = []
    for customer_id, tier_id, level in zip(
        evaluated.index, evaluated["tier_id"], evaluated["tier_level"], strict=True
    ):
        previous = current.get(customer_id)
        if previous == tier_id:
            continue
        if previous is None:
            direction = "initial"
        else:
            direction = "up" if level > policy.level_of(str(previous)) else "down"
        values = (str(customer_id), as_of, previous, str(tier_id), direction, reason)
        rows.append(dict(zip(CHANGE_COLUMNS, values, strict=True)))
    return rows


def apply_tier_changes(
    store: Store,
    as_of: datetime | str,
    *,
    policy: TierPolicy | None = None,
    members_only: bool = True,
    reason: str = DEFAULT_REASON,
) -> pd.DataFrame:
    """Record each customer's tier move at ``as_of`` in ``tier_change`` (one transaction).

    A customer with no earlier change gets an ``initial`` row; one whose evaluated
    tier differs from their tier just before ``as_of`` gets an ``up`` or ``down``
    row at ``changed_at = as_of`` (with ``policy.review_days``, a downgrade waits
    for the review and goes one tier down). Running again for the same ``as_of`` records
    nothing new (customers with a row at ``as_of`` are left as they are).

    Returns
    -------
    pandas.DataFrame
        The rows written: ``customer_id``, ``changed_at``, ``from_tier`` (missing
        for ``initial``), ``to_tier``, ``direction``, ``reason``; default index.

    Raises
    ------
    ValidationError
        If ``tier_change`` already holds changes after ``as_of`` (history is
        written in date order), or ``as_of`` is outside the store's data: before
        its first customer or order, or so long after its last order that the
        12-month window holds none (every member would be demoted).
    ConfigError
        If the policy is inconsistent or a customer's current tier is not in it.
    """
    at = as_store_time(as_of, name="as_of")
    with store.begin() as conn:
        check_store(conn)
        _refuse_dates_outside_the_data(conn, at)
        _refuse_back_dating(conn, at)
        policy = policy or _read_policy(conn)
        evaluated = _evaluate(conn, at, policy, members_only)
        current, done = _current_tiers(conn, at)
        evaluated = _protected(evaluated[~evaluated.index.isin(done)], current, policy, at)
        moves = _moves(evaluated, current["to_tier"], policy, at, reason)
        if moves:
            conn.execute(_T["tier_change"].insert(), moves)
    log.info("Recorded %d tier changes at %s", len(moves), at)
    text = {c: "str" for c in CHANGE_COLUMNS if c != "changed_at"}
    frame = pd.DataFrame(moves, columns=list(CHANGE_COLUMNS)).astype(text)
    return frame.astype({"changed_at": "datetime64[us]"})


def tier_names_from_store(store: Store, *, language: str) -> dict[int, str]:
    """Return tier level -> name as reasons and portraits say it: ``label`` in zh, else ``name``.

    Empty when the store defines no tiers (reasons then give the level number).
    """
    with store.connect() as conn:
        rows = conn.execute(select(Tier.level, Tier.name, Tier.label)).all()
    return tier_names_from_rows(rows, language=language)


def tier_names_from_rows(rows: Iterable[tuple[Any, Any, Any]], *, language: str) -> dict[int, str]:
    """Name ``(level, name, label)`` rows' tiers: the ``label`` in ``zh`` where set, else ``name``.

    The one rule for every reader of a tier table (the store, a Spark session).
    """
    return {
        int(level): str(label) if language == "zh" and label else str(name)
        for level, name, label in rows
    }
