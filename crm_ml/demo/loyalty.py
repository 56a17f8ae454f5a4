"""Loyalty assets: tiers and their changes, the points ledger, stored value, account managers.

Tier rule (evaluated on the first of every month, per member record): a member
moves up as soon as their rolling 12-month spend (net of discounts and
refunds, since joining) reaches a higher tier's threshold; once a year after
their last change they are reviewed and move down one tier if their spend no
longer holds it. Members reaching gold get an account manager.

Points: 100 on joining, then ``floor(net amount x tier multiplier)`` per order.
Points earned in a membership year (counted from joining) expire at the end
of the next one unless redeemed; a member who redeems does so at their first
order after their last order of that membership year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.catalog import TIERS
from crm_ml.demo.names import NamePools
from crm_ml.demo.orders import Orders
from crm_ml.demo.profiles import Records
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

THRESHOLDS = np.array([t[5] for t in TIERS])
POINTS_MULTIPLIER = np.array([1.0, 1.2, 1.5, 2.0])
JOIN_BONUS = 100
#: Account-manager cover starts at this tier level (gold).
OWNED_LEVEL = 2
# Reasons for a tier change, for directions down, initial, up.
_REASONS_ZH = ("年度复核未达标降级", "入会", "滚动12个月消费达标升级")
_REASONS_EN = ("annual review below threshold", "joined", "12-month spend reached threshold")


def month_starts(timeline: Timeline) -> F64:
    """Days of the first of every month after the start and up to the data end."""
    months = pd.date_range(
        pd.Timestamp(timeline.start), periods=timeline.n_days // 28 + 2, freq="MS"
    )
    days = np.array([timeline.day_of(m) for m in months])
    return days[(days > 0) & (days < timeline.n_days)]


@dataclass
class TierHistory:
    """Tier of each record at each month start (``level[record, month]``) and the changes."""

    months: F64
    level: NDArray[np.int8]
    changes: pd.DataFrame  # record, day, from_level, to_level, direction


def _monthly_spend(orders: Orders, records: Records, months: F64) -> F64:
    spend = orders.spend
    counted = orders.day >= records.member_day[orders.record]
    bucket = np.searchsorted(months, orders.day, side="right")  # 0 = before the first month start
    table = np.zeros((records.person.size, months.size + 1))
    np.add.at(table, (orders.record[counted], bucket[counted]), spend[counted])
    return table


def _month_step(
    level: NDArray[np.int8], since: F64, rolling: F64, active: NDArray[np.bool_], day: float
) -> tuple[NDArray[np.int8], F64, pd.DataFrame]:
    """Apply the tier rule on one month start: return new levels, review clocks and the moves."""
    qualify = (np.searchsorted(THRESHOLDS, rolling, side="right") - 1).astype(np.int8)
    up = active & (qualify > level)
    review = active & ~up & (day - since >= 365)
    down = review & (qualify < level)
    new = np.where(up, qualify, np.where(down, level - 1, level)).astype(np.int8)
    moved = np.flatnonzero(up | down)
    moves = pd.DataFrame(
        {
            "record": moved,
            "day": day,
            "from_level": level[moved],
            "to_level": new[moved],
            "direction": np.where(up[moved], "up", "down"),
        }
    )
    return new, np.where(up | review, day, since), moves


def tier_history(orders: Orders, records: Records, timeline: Timeline) -> TierHistory:
    """Run the tier rule for every member record, month start by month start."""
    months = month_starts(timeline)
    cum = np.cumsum(_monthly_spend(orders, records, months), axis=1)
    cum = np.concatenate([np.zeros((cum.shape[0], 1)), cum], axis=1)
    level = np.zeros(records.person.size, np.int8)
    since = np.where(np.isfinite(records.member_day), records.member_day, 0.0)
    history = np.zeros((level.size, months.size), np.int8)
    member = np.flatnonzero(np.isfinite(records.member_day))
    changes = [
        pd.DataFrame(
            {
                "record": member,
                "day": records.member_day[member],
                "from_level": -1,
                "to_level": 0,
                "direction": "initial",
            }
        )
    ]
    for k, day in enumerate(months):
        rolling = cum[:, k + 1] - cum[:, max(k - 11, 0)]
        level, since, moves = _month_step(level, since, rolling, records.member_day < day, day)
        history[:, k] = level
        changes.append(moves)
    return TierHistory(months, history, pd.concat(changes, ignore_index=True))


def level_at(history: TierHistory, record: I64, day: F64) -> I64:
    """Tier level of ``record`` at ``day`` (0 before the first evaluation)."""
    k = np.searchsorted(history.months, day, side="right") - 1
    return np.where(k >= 0, history.level[record, np.maximum(k, 0)], 0).astype(np.int64)


def tier_change_frame(
    history: TierHistory, records: Records, timeline: Timeline, chinese: bool
) -> pd.DataFrame:
    """Rows of the ``tier_change`` table."""
    ch = history.changes
    tier_ids = np.array([t[0] for t in TIERS])
    direction = ch["direction"].to_numpy()
    reason_code = np.searchsorted(np.array(["down", "initial", "up"]), direction)
    reasons = _REASONS_ZH if chinese else _REASONS_EN
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[ch["record"].to_numpy()],
            "changed_at": timeline.timestamps(ch["day"].to_numpy(dtype=np.float64)),
            "from_tier": _text.pick(tier_ids, ch["from_level"].to_numpy(dtype=np.int64)),
            "to_tier": tier_ids[ch["to_level"].to_numpy(dtype=np.int64)],
            "direction": direction,
            "reason": _text.pick(reasons, reason_code),
        }
    )


def manager_pool(pools: NamePools, n_customers: int, rng: np.random.Generator) -> pd.DataFrame:
    """Account managers: about one per 2,000 customers (5 to 60), distinct names."""
    n = int(np.clip(n_customers // 2_000, 5, min(60, len(pools.surnames))))
    surnames = rng.choice(len(pools.surnames), size=n, replace=False)
    given = rng.integers(0, len(pools.female_given), n)
    names = [
        pools.manager_name(pools.surnames[s], pools.female_given[g])
        for s, g in zip(surnames, given, strict=True)
    ]
    return pd.DataFrame({"owner_id": [f"AM{i + 1:03d}" for i in range(n)], "owner_name": names})


def owner_frame(
    history: TierHistory,
    records: Records,
    managers: pd.DataFrame,
    timeline: Timeline,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Rows of ``customer_owner``: a manager from the month a record first reaches gold.

    One in five is handed to another manager some months later.
    """
    reached = history.level >= OWNED_LEVEL
    record = np.flatnonzero(reached.any(axis=1))
    start = history.months[reached[record].argmax(axis=1)]
    first = rng.integers(0, len(managers), record.size)
    handover = start + rng.uniform(120.0, 600.0, record.size)
    moved = (rng.random(record.size) < 0.2) & (handover < timeline.n_days)
    second = (first + rng.integers(1, max(len(managers), 2), record.size)) % len(managers)
    rec = np.concatenate([record, record[moved]])
    owner = np.concatenate([first, second[moved]])
    valid_from = np.concatenate([start, handover[moved]])
    valid_to = np.concatenate(
        [np.where(moved, handover, np.nan), np.full(int(moved.sum()), np.nan)]
    )
    ends = ~np.isnan(valid_to)
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[rec],
            "valid_from": timeline.timestamps(valid_from),
            "owner_id": managers["owner_id"].to_numpy()[owner],
            "owner_name": managers["owner_name"].to_numpy()[owner],
            "valid_to": pd.Series(timeline.timestamps(np.where(ends, valid_to, 0.0))).where(ends),
        }
    )
