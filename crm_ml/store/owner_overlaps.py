"""Importing account manager assignments (``customer_owner``): no two at a time.

A customer has one account manager at a time, as a merge keeps it
(:mod:`crm_ml.store.rekey`): :func:`check_owner_overlaps` rejects a new
assignment whose period ``[valid_from, valid_to)`` overlaps another of the
customer's, in the store or in the same file, and says which one and what to
do. When the clash comes from a file's times read in the wrong timezone (a
stored ``valid_from`` read as local time), the message says so.

Run inside the load's transaction with the other checks that need the store
(:mod:`crm_ml.store.reconcile`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from crm_ml.store.reconcile import existing_rows
from crm_ml.store.rejects import PartsRejectLog, RejectLog
from crm_ml.store.validation import TableSpec

_OWNER = ["customer_id", "valid_from", "owner_id", "valid_to"]


def _stored_owners(conn: Connection, accepted: pd.DataFrame) -> pd.DataFrame:
    """Return the stored assignments of the file's customers, closed where the file closes them.

    The file's ``valid_to`` counts only where the store has none: a stored one never
    changes (:func:`crm_ml.store.reconcile.plan_load` rejects a row that would change it).
    """
    customers = accepted[["customer_id"]].drop_duplicates()
    stored = existing_rows(conn, "customer_owner", customers, _OWNER)  # every row of each customer
    given = accepted[["customer_id", "valid_from", "valid_to"]]
    both = stored.merge(given, on=["customer_id", "valid_from"], how="left", suffixes=("", "_f"))
    return both.assign(valid_to=both["valid_to"].fillna(both["valid_to_f"]))[_OWNER]


def _overlapping(new: pd.DataFrame, others: pd.DataFrame) -> pd.DataFrame:
    """For each row of ``new`` that overlaps a row of ``others``, the earliest such row.

    Periods are ``[valid_from, valid_to)``, open while ``valid_to`` is blank, the rule
    :func:`crm_ml.store.rekey` keeps a merged record's assignments apart by: one
    that ends as the next starts does not overlap it.

    Returns
    -------
    pandas.DataFrame
        Indexed by the rows of ``new``; the columns of ``others`` suffixed ``_o``.
    """
    pairs = new.reset_index(names="row").merge(others, on="customer_id", suffixes=("", "_o"))
    pairs = pairs[pairs["row"] != pairs["row_o"]]
    starts_before_end = pairs["valid_to_o"].isna() | (pairs["valid_from"] < pairs["valid_to_o"])
    ends_after_start = pairs["valid_to"].isna() | (pairs["valid_from_o"] < pairs["valid_to"])
    hits = pairs[(starts_before_end & ends_after_start).to_numpy(dtype=bool)]
    return hits.sort_values(["row", "valid_from_o"]).drop_duplicates("row").set_index("row")


def _overlap_message(hit: pd.Series, timezone: str, log: RejectLog) -> str:
    """Say which assignment ``hit`` (a row of :func:`_overlapping`) overlaps, and what to do."""
    valid_from = pd.Timestamp(hit["valid_from"])
    end = "still open"
    if not pd.isna(hit["valid_to_o"]):
        end = f"until {hit['valid_to_o']:%Y-%m-%d %H:%M} UTC"
    stored = hit["row_o"] < 0
    where = f"on {log.unit} {hit['line_o']} of this file"
    if stored:
        where = "in the store"
    elif isinstance(log, PartsRejectLog):
        where = f"on row {hit['line_o']} of this folder (counted across its part files)"
    text = (
        f"{{value}} ({valid_from:%Y-%m-%d %H:%M} UTC) overlaps the assignment from "
        f"{hit['valid_from_o']:%Y-%m-%d %H:%M} UTC ({hit['owner_id_o']}, {end}) {where}: a "
        "customer has one account manager at a time, so expected a period that does not "
        "overlap it; "
    )
    if not stored:
        return text + "end one where the other starts"
    text += "close it first (its valid_to) or, to close it, give the same valid_from"
    local = valid_from.tz_localize("UTC").tz_convert(timezone).tz_localize(None)
    if local == hit["valid_from_o"] != valid_from:
        hours = (local - valid_from) / pd.Timedelta(hours=1)
        text += (
            f". Read in {timezone} this valid_from is {abs(hours):g} h "
            f"{'before' if hours > 0 else 'after'} the stored one: if the file's times are UTC, "
            "as rows taken from the store are, import it with --timezone UTC"
        )
    return text


def check_owner_overlaps(
    conn: Connection,
    spec: TableSpec,
    clean: pd.DataFrame,
    log: RejectLog,
    *,
    raw: pd.Series,
    timezone: str,
) -> None:
    """Reject a new ``customer_owner`` row whose period overlaps another of the customer's.

    A customer has one account manager at a time, as a merge keeps it
    (:mod:`crm_ml.store.rekey`). A row whose key is new is checked against the
    customer's stored assignments, as this file leaves them (closed where it
    fills in their ``valid_to``), and against the file's other new rows. A row
    with a stored key is not: filling in its ``valid_to`` only shortens it.
    When a ``valid_from`` read in ``timezone`` is a stored one read as UTC, the
    message says so: rows taken from the store are in UTC.
    """
    if spec.name != "customer_owner" or not (~log.rejected).any():
        return
    accepted = clean.loc[~log.rejected, _OWNER]
    stored = _stored_owners(conn, accepted)
    known = pd.MultiIndex.from_frame(stored[["customer_id", "valid_from"]])
    is_new = ~pd.MultiIndex.from_frame(accepted[["customer_id", "valid_from"]]).isin(known)
    new = accepted[is_new].assign(line=log.lines[accepted.index[is_new]])
    if new.empty:
        return
    others = pd.concat(
        [stored.assign(row=-1, line=-1), new.reset_index(names="row")], ignore_index=True
    )
    hits = _overlapping(new, others)
    rows = hits.index.to_numpy(dtype=np.int64)
    mask = np.zeros(len(clean), dtype=bool)
    mask[rows] = True
    messages = np.empty(len(clean), dtype=object)
    messages[rows] = [_overlap_message(hit, timezone, log) for _, hit in hits.iterrows()]
    log.add(mask, "valid_from", "overlap", raw, messages)
