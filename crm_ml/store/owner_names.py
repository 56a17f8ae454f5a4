"""Importing account manager assignments (``customer_owner``): one name per owner id.

The owner id decides who receives a customer's data: a segment export writes
one list file per owner id (:mod:`crm_ml.segments.export`), headed with its
name. So :func:`check_owner_names` refuses a row that gives an owner id another
name than the one stored for it (or, for an id the store does not hold yet,
than the file's first row of that id), and warns about owner ids the store has
never seen, which may be a typo (``AM0l1`` for ``AM001``) creating a recipient
who does not exist.

A name is refused rather than taken as a rename: ``owner_name`` is stored on
each assignment and a stored assignment never changes (only its ``valid_to`` is
filled in later), so a second name would put two names on one manager's list.

Run inside the load's transaction with the other checks that need the store
(:mod:`crm_ml.store.reconcile`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from crm_ml.store.rejects import PartsRejectLog, RejectLog
from crm_ml.store.schema import CustomerOwner

#: How many new owner ids, and lines of each, a warning quotes.
QUOTED_IDS = 10
QUOTED_LINES = 3


def _stored_names(conn: Connection) -> pd.DataFrame:
    """Every stored owner id with each name stored for it (NA where none was given).

    Distinct pairs: as many rows as account managers (and their spellings), not assignments.
    """
    query = select(CustomerOwner.owner_id, CustomerOwner.owner_name).distinct()
    frame = pd.DataFrame(conn.execute(query).all(), columns=["owner_id", "owner_name"])
    return frame.astype("str").where(frame.notna())


def _in_file(log: RejectLog, line: int) -> str:
    if isinstance(log, PartsRejectLog):
        return f"on row {line} of this folder (counted across its part files)"
    return f"on {log.unit} {line} of this file"


def _allowed_names(named: pd.DataFrame, stored: pd.DataFrame, log: RejectLog) -> pd.DataFrame:
    """Return the names each owner id of ``named`` may have: stored ones, else the first given.

    Returns
    -------
    pandas.DataFrame
        RangeIndex; columns ``owner_id, owner_name, source`` (where the name comes from).
    """
    known = stored.dropna(subset=["owner_name"]).assign(source="as stored for it")
    fresh = named[~named["owner_id"].isin(known["owner_id"])].drop_duplicates("owner_id")
    given = fresh[["owner_id", "owner_name"]].assign(
        source=[f"as given {_in_file(log, line)}" for line in log.lines[fresh.index]]
    )
    return pd.concat([known, given], ignore_index=True)


def _name_messages(named: pd.DataFrame, allowed: pd.DataFrame) -> pd.Series:
    """One message per row of ``named`` whose name its owner id does not have; same index."""
    pairs = pd.MultiIndex.from_frame(allowed[["owner_id", "owner_name"]])
    wrong = named[~pd.MultiIndex.from_frame(named[["owner_id", "owner_name"]]).isin(pairs)]
    expected = allowed.groupby("owner_id").agg(
        names=("owner_name", lambda names: " or ".join(repr(n) for n in names)),
        source=("source", "first"),
    )
    found = expected.reindex(wrong["owner_id"].to_numpy())
    messages = [
        f"{{value}} is not the name of owner {owner}: expected {names}, {source}. One owner id "
        "is one account manager, who receives the list of its customers: give another person "
        "their own owner id, or write the name as expected"
        for owner, names, source in zip(
            wrong["owner_id"], found["names"], found["source"], strict=True
        )
    ]
    return pd.Series(messages, index=wrong.index, dtype=object)


def _lines_text(lines: np.ndarray, unit: str) -> str:
    shown = ", ".join(str(line) for line in lines[:QUOTED_LINES])
    more = " …" if len(lines) > QUOTED_LINES else ""
    return f"{unit}{'s' if len(lines) > 1 else ''} {shown}{more}"


def _new_owner_warning(accepted: pd.DataFrame, stored: pd.DataFrame, log: RejectLog) -> str | None:
    """Name the owner ids of ``accepted`` that the store has never held, and their lines."""
    new = accepted[~accepted["owner_id"].isin(stored["owner_id"])]
    if new.empty or stored.empty:  # a first owner file: every id is new, so none stands out
        return None
    lines = pd.Series(log.lines[new.index], index=new.index).groupby(new["owner_id"], sort=False)
    quoted = [f"{owner!r} ({_lines_text(ls.to_numpy(), log.unit)})" for owner, ls in lines]
    more = f", … and {len(quoted) - QUOTED_IDS} more" if len(quoted) > QUOTED_IDS else ""
    return (
        f"{len(quoted)} owner id(s) are new to the store: {', '.join(quoted[:QUOTED_IDS])}{more}. "
        "Each owner id gets its own list file of its customers' data when a segment is "
        "exported: check that these are your account managers' ids (a letter l or O for a "
        "1 or 0 makes a new one)."
    )


def check_owner_names(
    conn: Connection, clean: pd.DataFrame, log: RejectLog, *, raw: pd.Series
) -> list[str]:
    """Reject ``customer_owner`` rows naming an owner id otherwise; warn about new owner ids.

    A row's ``owner_name`` must be one stored for its ``owner_id`` or, for an id
    stored without a name or not at all, the name of the file's first row of that
    id. A blank name is not checked. ``raw`` is the file's ``owner_name``, shown in
    the reject report.

    Returns
    -------
    list of str
        The warning naming the accepted rows' owner ids that the store has never
        held, with their lines; empty when there are none, or when the store holds
        no owner yet (a first import).
    """
    accepted = clean.loc[~log.rejected, ["owner_id", "owner_name"]]
    if accepted.empty:
        return []
    stored = _stored_names(conn)
    named = accepted.dropna(subset=["owner_name"])
    messages = _name_messages(named, _allowed_names(named, stored, log))
    rows = messages.index.to_numpy(dtype=np.int64)
    mask = np.zeros(len(clean), dtype=bool)
    mask[rows] = True
    texts = np.empty(len(clean), dtype=object)
    texts[rows] = messages.to_numpy()
    log.add(mask, "owner_name", "owner_name", raw, texts)
    warning = _new_owner_warning(clean.loc[~log.rejected, ["owner_id"]], stored, log)
    return [warning] if warning else []
