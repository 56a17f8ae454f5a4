"""Stored value (prepaid card): some members top up once and pay their next orders from it.

Big spenders top up more often and larger amounts. Each order paid from the
card takes what it costs, up to what is left, so the balance never goes negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.orders import Orders
from crm_ml.demo.population import People
from crm_ml.demo.profiles import Records
from crm_ml.demo.timeline import Timeline

F64 = NDArray[np.float64]

TOP_UPS = np.array([500.0, 1_000.0, 2_000.0, 3_000.0, 5_000.0])


def _paying_orders(
    orders: Orders, records: Records, chosen: NDArray[np.bool_], rng: np.random.Generator
) -> pd.DataFrame:
    """Member orders of the chosen records from the one at which they top up, by record and time."""
    frame = pd.DataFrame(
        {
            "order": np.arange(orders.n),
            "record": orders.record,
            "day": orders.day,
            "net": orders.net,
        }
    )
    record = frame["record"].to_numpy()
    frame = frame[chosen[record] & (frame["day"].to_numpy() >= records.member_day[record])]
    frame = frame.sort_values(["record", "day"], kind="stable")
    record = frame["record"].to_numpy()
    count = np.bincount(record, minlength=records.person.size)
    start = np.floor(rng.random(records.person.size) * 0.5 * count)
    rank = frame.groupby("record").cumcount().to_numpy()
    return frame[rank >= start[record]].reset_index(drop=True)


def stored_value_entries(
    orders: Orders, records: Records, people: People, rng: np.random.Generator
) -> pd.DataFrame:
    """Top-ups and the spending they pay for.

    Returns
    -------
    pandas.DataFrame
        Columns ``record, day, kind`` (``top_up`` or ``spend``), ``amount``
        (spending negative) and ``order`` (-1 for top-ups), in posting order.
    """
    spend = people.spend[records.person]
    chosen = rng.random(records.person.size) < 0.05 + 0.10 * (spend > 1.3)
    size = np.floor(rng.random(spend.size) * 3 + (spend > 1.3) + (spend > 2.0))
    amount = TOP_UPS[np.clip(size, 0, len(TOP_UPS) - 1).astype(np.int64)]
    paying = _paying_orders(orders, records, chosen, rng)
    record = paying["record"].to_numpy()
    spent = np.minimum(paying.groupby("record")["net"].cumsum().to_numpy(), amount[record])
    first = np.r_[True, record[1:] != record[:-1]] if record.size else np.zeros(0, bool)
    paid = spent - np.where(first, 0.0, np.r_[0.0, spent[:-1]])
    top_up = paying[first].assign(kind="top_up", amount=amount[record[first]], order=-1)
    used = paying[paid > 0].assign(kind="spend", amount=-paid[paid > 0])
    entries = pd.concat([top_up, used], ignore_index=True)
    return entries[["record", "day", "kind", "amount", "order"]].sort_values("day", kind="stable")


def stored_value_frame(
    entries: pd.DataFrame, records: Records, order_id: pd.Series, timeline: Timeline
) -> pd.DataFrame:
    """Rows of the ``stored_value_ledger`` table."""
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[entries["record"].to_numpy()],
            "posted_at": timeline.timestamps(entries["day"].to_numpy()),
            "kind": entries["kind"].to_numpy(),
            "amount": np.round(entries["amount"].to_numpy(), 2),
            "order_id": _text.pick(order_id.to_numpy(), entries["order"].to_numpy()),
        }
    )
