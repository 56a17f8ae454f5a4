"""Lining up each query's rows with the population, without string joins in pandas.

Aligning a million string ids in pandas costs seconds per query. Instead the
population is numbered once in the database (a temporary table of
``customer_id`` and its position), every query is joined to it there, and its
rows are placed by position into numpy arrays.

Positions follow ``customer_id`` order, except on Spark: there a window over
the whole population runs in a single partition (and Spark warns about it on
every plan that holds it), so customers are numbered within buckets of their
id's hash instead, and the caller sorts the assembled frame by id.
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

#: Hash buckets of ``customer_id`` that Spark numbers customers within, in parallel. At most
#: 25: a longer array literal (the buckets' first positions) makes Spark warn that it
#: truncated the plan's text.
SPARK_BUCKETS = 16


@contextmanager
def numbered_population(snap: Snapshot) -> Iterator[pd.Index]:
    """Give each customer a position, in a temporary table held for the length of the block.

    Inside the block, :func:`crm_ml.features.identity.population` returns the
    numbered table (see :func:`~crm_ml.features.backend.temporary_table`).

    Yields
    ------
    pandas.Index
        ``customer_id`` in position order, named ``customer_id``: sorted,
        except on Spark (see the module notes).
    """
    numbering = _numbered_in_buckets if snap.dialect == "pyspark" else _numbered_in_order
    with numbering(snap, population(snap)) as table:
        snap.people = table
        try:
            ids = fetch(table.select("customer_id", POSITION).order_by(POSITION))["customer_id"]
            yield pd.Index(ids, name="customer_id", dtype="str")
        finally:
            snap.people = None


@contextmanager
def _numbered_in_order(snap: Snapshot, people: ir.Table) -> Iterator[ir.Table]:
    """Yield ``people`` with positions in ``customer_id`` order, from one window over all."""
    numbered = people.mutate(**{POSITION: ibis.row_number().over(order_by=people.customer_id)})
    with temporary_table(snap.con, numbered, "population") as table:
        yield table


@contextmanager
def _numbered_in_buckets(snap: Snapshot, people: ir.Table) -> Iterator[ir.Table]:
    """Yield ``people`` with positions in ``customer_id`` order within hash buckets, in turn.

    Both the bucket and the order within it depend on the id alone, so Spark
    gives the same positions if it ever recomputes the table.
    """
    hashed = people.customer_id.hash()
    bucket = ((hashed % SPARK_BUCKETS) + SPARK_BUCKETS) % SPARK_BUCKETS  # Spark's % keeps the sign
    with temporary_table(snap.con, people.mutate(_crm_bucket=bucket), "people") as table:
        sizes = fetch(table.group_by("_crm_bucket").agg(customers=table.count()))
        counts = np.zeros(SPARK_BUCKETS, dtype="int64")
        counts[sizes["_crm_bucket"].to_numpy()] = sizes["customers"].to_numpy()
        starts = [0, *np.cumsum(counts)[:-1].tolist()]  # each bucket's first position
        start = ibis.literal(starts, type="array<int64>")[table._crm_bucket]
        rank = ibis.row_number().over(group_by=table._crm_bucket, order_by=table.customer_id)
        numbered = table.mutate(**{POSITION: start + rank}).drop("_crm_bucket")
        with temporary_table(snap.con, numbered, "population") as numbered_table:
            yield numbered_table


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
