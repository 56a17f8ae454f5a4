"""The points ledger: join bonus, points per order, redemptions, expiry, goodwill.

Points are counted in membership years, from the day a member joined: points
earned in membership year k expire at the end of year k+1, on the second
anniversary after they were earned (a member who joined on 15 March 2023
loses on 15 March 2025 what is left of the points earned until 14 March
2024). Expiries thus fall on every day of the calendar, as in programmes
that count from joining, and "points expiring within 30 days" is a quantity
that varies between members and snapshots.

Every posting keeps the balance non-negative: points of membership year k are
redeemed only after the member's last order of that year, and only what is
left of them expires.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.loyalty import JOIN_BONUS, POINTS_MULTIPLIER, TierHistory, level_at
from crm_ml.demo.orders import Orders, next_order
from crm_ml.demo.population import People
from crm_ml.demo.profiles import Records
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_NOTES = {
    "zh_CN": {
        "bonus": "入会礼",
        "earn": "消费积分",
        "redeem": "积分抵现",
        "expire": "积分到期清零",
        "adjust": "客诉补偿积分",
    },
    "en": {
        "bonus": "welcome bonus",
        "earn": "purchase",
        "redeem": "redeemed at checkout",
        "expire": "points expired",
        "adjust": "goodwill after complaint",
    },
}
GOODWILL_POINTS = 200


def _dates(timeline: Timeline, day: F64) -> NDArray[np.datetime64]:
    return timeline.start + np.floor(day).astype(np.int64).astype("timedelta64[D]")


def _add_years(date: NDArray[np.datetime64], years: I64) -> NDArray[np.datetime64]:
    """Return the same day of the month ``years`` later (29 February becomes 1 March)."""
    month = date.astype("datetime64[M]")
    day_of_month = date - month.astype("datetime64[D]")
    later = month + (12 * years).astype("timedelta64[M]")
    return later.astype("datetime64[D]") + day_of_month


def _membership_year(timeline: Timeline, joined: F64, day: F64) -> I64:
    """Anniversaries of joining passed by ``day``: 0 in a member's first year."""
    start, when = _dates(timeline, joined), _dates(timeline, day)
    years = when.astype("datetime64[Y]").astype(np.int64) - start.astype("datetime64[Y]").astype(
        np.int64
    )
    return years - (when < _add_years(start, years)).astype(np.int64)


def _expiry_day(timeline: Timeline, joined: F64, member_year: I64) -> F64:
    """Day the points of ``member_year`` expire: the end of the membership year after it."""
    expiry = _add_years(_dates(timeline, joined), member_year + 2) - timeline.start
    return expiry.astype(np.int64).astype(np.float64)


def earnings(orders: Orders, records: Records, history: TierHistory) -> pd.DataFrame:
    """Join bonuses and points per order of member records.

    Returns
    -------
    pandas.DataFrame
        Columns ``record, day, points, order, kind`` (``order`` -1 for bonuses).
    """
    member = np.isfinite(records.member_day[orders.record]) & (
        orders.day >= records.member_day[orders.record]
    )
    idx = np.flatnonzero(member)
    level = level_at(history, orders.record[idx], orders.day[idx])
    points = np.floor(orders.net[idx] * POINTS_MULTIPLIER[level]).astype(np.int64)
    joined = np.flatnonzero(np.isfinite(records.member_day))
    return pd.DataFrame(
        {
            "record": np.concatenate([joined, orders.record[idx][points > 0]]),
            "day": np.concatenate([records.member_day[joined], orders.day[idx][points > 0]]),
            "points": np.concatenate([np.full(joined.size, JOIN_BONUS), points[points > 0]]),
            "order": np.concatenate([np.full(joined.size, -1), idx[points > 0]]),
            "kind": np.concatenate(
                [np.full(joined.size, "bonus"), np.full(int((points > 0).sum()), "earn")]
            ),
        }
    )


def redemptions_and_expiry(
    earned: pd.DataFrame,
    orders: Orders,
    records: Records,
    people: People,
    timeline: Timeline,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Redemptions and expiries per member and membership year (columns of :func:`earnings`)."""
    joined = records.member_day[earned["record"].to_numpy()]
    earned = earned.assign(year=_membership_year(timeline, joined, earned["day"].to_numpy()))
    pots = (
        earned.groupby(["record", "year"], sort=True)
        .agg(total=("points", "sum"), last=("day", "max"))
        .reset_index()
    )
    record, total = pots["record"].to_numpy(), pots["total"].to_numpy()
    expiry = _expiry_day(timeline, records.member_day[record], pots["year"].to_numpy())
    keen = rng.random(record.size) < 0.2 + 0.5 * people.deal[records.person[record]]
    amount = (np.floor(rng.uniform(0.5, 1.0, record.size) * total / 100) * 100).astype(np.int64)
    order = next_order(orders, record, pots["last"].to_numpy(), expiry)
    redeemed = np.flatnonzero(keen & (amount > 0) & (order >= 0))
    used = np.zeros(record.size, np.int64)
    used[redeemed] = amount[redeemed]
    lapsed = np.flatnonzero((expiry < timeline.n_days) & (total - used > 0))
    return pd.DataFrame(
        {
            "record": np.concatenate([record[redeemed], record[lapsed]]),
            "day": np.concatenate([orders.day[order[redeemed]], expiry[lapsed]]),
            "points": np.concatenate([-amount[redeemed], -(total - used)[lapsed]]),
            "order": np.concatenate([order[redeemed], np.full(lapsed.size, -1)]),
            "kind": np.concatenate(
                [np.full(redeemed.size, "redeem"), np.full(lapsed.size, "expire")]
            ),
        }
    )


def goodwill(
    complaint_person: I64,
    complaint_day: F64,
    records: Records,
    end: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Points credited to members after some complaints (same columns as :func:`earnings`)."""
    record = records.primary[complaint_person]
    day = complaint_day + rng.uniform(0.1, 2.0, complaint_day.size)
    chosen = (
        (records.member_day[record] < complaint_day) & (rng.random(record.size) < 0.4) & (day < end)
    )
    n = int(chosen.sum())
    return pd.DataFrame(
        {
            "record": record[chosen],
            "day": day[chosen],
            "points": np.full(n, GOODWILL_POINTS),
            "order": np.full(n, -1),
            "kind": np.full(n, "adjust"),
        }
    )


def points_frame(
    entries: pd.DataFrame,
    records: Records,
    order_id: pd.Series,
    timeline: Timeline,
    locale: str,
) -> pd.DataFrame:
    """Rows of the ``points_ledger`` table, in posting order."""
    entries = entries.sort_values("day", kind="stable").reset_index(drop=True)
    day = entries["day"].to_numpy(dtype=np.float64)
    kind = entries["kind"].to_numpy()
    earning = np.isin(kind, ["earn", "bonus"])
    # Only earnings expire; every ledger entry is a member's, so joined is finite for them.
    joined = records.member_day[entries["record"].to_numpy()]
    joined = np.where(earning, joined, day)
    expires = timeline.midnights(
        _expiry_day(timeline, joined, _membership_year(timeline, joined, day))
    )
    notes = _NOTES[locale]
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[entries["record"].to_numpy()],
            "posted_at": timeline.timestamps(day),
            "kind": np.where(kind == "bonus", "earn", kind),
            "points": entries["points"].to_numpy(dtype=np.int64),
            "order_id": _text.pick(order_id.to_numpy(), entries["order"].to_numpy(dtype=np.int64)),
            "expires_at": pd.Series(expires).where(earning),
            "note": pd.Series(kind).map(notes).astype("str"),
        }
    )
