"""Lining up each query's rows with the population, without string joins in pandas.

Aligning a million string ids in pandas costs seconds per query. Instead the
population is numbered once in the database (a temporary table of
``customer_id`` and its position), every query is joined to it there, and its
rows are placed by position into numpy arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_ml.features.backend import Snapshot, fetch, temporary_table
from crm_ml.features.identity import population

log = logging.getLogger(__name__)

#: Column holding a customer's position (0..n-1) in the population.
POSITION = "_crm_position"


@contextmanager
def numbered_population(snap: Snapshot) -> Iterator[pd.Index]:
    """Give each customer a position, in a temporary table held for the length of the block.

    Inside the block, :func:`crm_ml.features.identity.population` returns the
    numbered table (see :func:`~crm_ml.features.backend.temporary_table`).

    Yields
    ------
    pandas.Index
        ``customer_id`` in position order, named ``customer_id``.
    """
    people = population(snap)
    numbered = people.mutate(**{POSITION: ibis.row_number().over(order_by=people.customer_id)})
    with temporary_table(snap.con, numbered, "population") as table:
        snap.people = table
        try:
            ids = fetch(table.select("customer_id", POSITION).order_by(POSITION))["customer_id"]
            yield pd.Index(ids, name="customer_id", dtype="str")
        finally:
            snap.people = None


def positioned(snap: Snapshot, expr: ir.Table) -> ir.Table:
    """``expr`` restricted to the population, with each row's position instead of its id."""
    people = population(snap).select("customer_id", POSITION)
    return people.inner_join(expr, "customer_id").drop("customer_id")


def scatter(part: pd.DataFrame, size: int) -> pd.DataFrame:
    """Place ``part``'s rows at their positions in a frame of ``size`` rows (gaps are missing).

    Returns
    -------
    pandas.DataFrame
        Default index ``0..size-1``; ``part``'s columns except the position.
    """
    where = part[POSITION].to_numpy(dtype="int64")
    columns = {}
    for name in part.columns.drop(POSITION):
        values = part[name].to_numpy()
        if values.dtype.kind in "biuf":
            out = np.full(size, np.nan)
        else:
            out = np.full(size, None, dtype=object)
        out[where] = values
        columns[name] = out
    return pd.DataFrame(columns, index=pd.RangeIndex(size))
