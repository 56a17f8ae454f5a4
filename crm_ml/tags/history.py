"""Who had which tag when: queries over the ``customer_tag`` history.

A membership is in force over ``[valid_from, valid_to)``; an open membership
has no ``valid_to``. Because ended memberships are closed rather than deleted,
"who had tag X on date D" has one answer for every past D.

That answer is given by person, as the features and rules key customers: a
membership held by a merged-away record counts for its final survivor
(:func:`crm_ml.rules.tag_members_at`). :func:`tag_history` shows the rows as
stored, on the records they were written for.

Every query by tag name checks the name first: an unknown tag raises
:class:`~crm_ml.errors.NotFoundError` with the nearest names, as
:func:`~crm_ml.tags.get_tag_definition` does, instead of answering "nobody".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import select

from crm_ml.rules import as_timestamp, tag_members_at
from crm_ml.store.connection import Store
from crm_ml.store.schema import CustomerTag
from crm_ml.tags.definitions import require_tags

HISTORY_COLUMNS = ["customer_id", "tag", "valid_from", "valid_to", "source", "actor", "reason"]


def customers_with_tag(store: Store, tag: str, on: Any) -> pd.Index:
    """Return the customers who had ``tag`` on date ``on``, by person.

    A membership held by a merged-away record counts for its survivor.

    Returns
    -------
    pandas.Index
        Sorted surviving ``customer_id`` values.

    Raises
    ------
    NotFoundError
        If ``tag`` is not defined.
    """
    with store.connect() as conn:
        return tag_members_at(conn, require_tags(conn, [tag]), as_timestamp(on, "on"))[tag]


def tag_history(
    store: Store, *, tag: str | None = None, customer_id: str | None = None
) -> pd.DataFrame:
    """Return membership history, optionally for one tag and/or one customer.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, tag, valid_from, valid_to, source, actor, reason``,
        sorted by tag, customer and ``valid_from``. ``valid_to`` is NaT while open.

    Raises
    ------
    NotFoundError
        If ``tag`` is given and not defined.
    """
    query = select(
        CustomerTag.customer_id,
        CustomerTag.tag_id,
        CustomerTag.valid_from,
        CustomerTag.valid_to,
        CustomerTag.source,
        CustomerTag.actor,
        CustomerTag.reason,
    )
    if tag is not None:
        query = query.where(CustomerTag.tag_id == tag)
    if customer_id is not None:
        query = query.where(CustomerTag.customer_id == customer_id)
    with store.connect() as conn:
        if tag is not None:
            require_tags(conn, [tag])
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    for column in ("valid_from", "valid_to"):
        frame[column] = pd.to_datetime(frame[column])
    return frame.sort_values(["tag", "customer_id", "valid_from"], ignore_index=True)


def tag_sizes(store: Store, tags: Iterable[str], dates: Iterable[Any]) -> pd.DataFrame:
    """Count each tag's members (people, merged records counted once) on each date.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``date``; one integer column per tag.

    Raises
    ------
    NotFoundError
        If a tag is not defined.
    """
    stamps = [as_timestamp(d, "date") for d in dates]
    with store.connect() as conn:
        names = require_tags(conn, tags)
        counts = [{n: len(m) for n, m in tag_members_at(conn, names, d).items()} for d in stamps]
    frame = pd.DataFrame(counts, index=pd.DatetimeIndex(stamps, name="date"), columns=names)
    return frame.fillna(0).astype("int64")


def tag_changes(store: Store, tag: str, since: Any | None, until: Any) -> pd.DataFrame:
    """Return who joined and who left ``tag`` between two dates (net of changes in between).

    With ``since=None`` everyone holding the tag at ``until`` counts as added.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` and ``change`` (``added`` or ``removed``),
        sorted by change then customer.

    Raises
    ------
    NotFoundError
        If ``tag`` is not defined.
    """
    end = as_timestamp(until, "until")
    with store.connect() as conn:
        require_tags(conn, [tag])
        after = set(tag_members_at(conn, [tag], end)[tag])
        before = (
            set()
            if since is None
            else set(tag_members_at(conn, [tag], as_timestamp(since, "since"))[tag])
        )
    rows = [(c, "added") for c in sorted(after - before)]
    rows += [(c, "removed") for c in sorted(before - after)]
    return pd.DataFrame(rows, columns=["customer_id", "change"], dtype="str")
