"""Labels: what happens in ``[as_of, as_of + horizon)``, for the customers who exist at ``as_of``.

Labels look only forward and features only backward, so a row dated exactly
``as_of`` belongs to the label, never to the features. Merged customers'
rows follow the surviving id, as in the features.

A label window must end by the end of the data (the midnight after the last
order's day, :func:`~crm_ml.features.span.end_of_data`): past it, the days
with no data would read as days with no purchase, so everyone would look
churned. Every label function refuses such a window, and an ``as_of`` outside
the data (:func:`~crm_ml.features.span.check_as_of`).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import cast

import ibis.expr.types as ir
import pandas as pd

from crm_ml.errors import ConfigError, NotFoundError, ValidationError
from crm_ml.features.backend import Snapshot, TableSource, fetch, open_tables
from crm_ml.features.identity import open_snapshot, population
from crm_ml.features.span import check_as_of, data_span, end_of_data
from crm_ml.features.spec import FeatureWindows, as_timestamp, when_text
from crm_ml.store.normalizers import CATEGORY_NAMES

log = logging.getLogger(__name__)

#: Horizons of the churn-definition sensitivity table, in days.
SENSITIVITY_HORIZONS = (30, 60, 90, 180)

_Query = Callable[[Snapshot, datetime], ir.Table]


def check_horizon(horizon_days: int) -> int:
    """Return ``horizon_days`` if it is a positive whole number of days.

    Raises
    ------
    ConfigError
        Otherwise.
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days <= 0:
        raise ConfigError(
            f"horizon_days must be a positive whole number of days; got {horizon_days!r}."
        )
    return horizon_days


def _orders_between(snap: Snapshot, start: datetime, end: datetime) -> ir.Table:
    orders = snap.table("orders")
    return orders.filter((orders.ordered_at >= start) & (orders.ordered_at < end))


def _buyers(snap: Snapshot) -> ir.Table:
    orders = snap.table("orders")
    return orders.filter(orders.ordered_at < snap.as_of).select("customer_id").distinct()


def check_label_window(
    as_of: datetime, horizon_days: int, last_order: datetime, *, what: str = "as_of"
) -> None:
    """Refuse a label window ``[as_of, as_of + horizon_days)`` that ends after the data.

    ``last_order`` is the store's last order; the data is taken to run to the end
    of its day (:func:`~crm_ml.features.span.end_of_data`).

    Raises
    ------
    ValidationError
        If the window ends after that, naming the latest ``as_of`` the data allows.
    """
    end, data_end = as_of + timedelta(days=horizon_days), end_of_data(last_order)
    if end > data_end:
        raise ValidationError(
            f"{what} {when_text(as_of)}: its {horizon_days}-day label window ends "
            f"{when_text(end)}, "
            f"after the data ends (last order {last_order:%Y-%m-%d %H:%M} UTC; the data covers "
            f"windows ending by {when_text(data_end)}). The days past it would read as days when "
            "nothing happened (no purchase, no tier change), so the labels would be wrong. "
            f"Use an as_of on or before {when_text(data_end - timedelta(days=horizon_days))} or a "
            "shorter horizon; if there are newer orders, load them first "
            "(`crm-ml import orders FILE`)."
        )


def _checked_cutoff(
    store: TableSource, as_of: datetime | date | str, horizon_days: int
) -> datetime:
    """Return ``as_of`` as the store's time if the data covers it and its label window."""
    check_horizon(horizon_days)
    cutoff = as_timestamp(as_of)
    span = data_span(store)  # on Spark, two small jobs beside the label's own
    if span.last_order is not None:  # else check_as_of says the store has no orders
        check_label_window(cutoff, horizon_days, span.last_order)
    return check_as_of(store, cutoff, span=span)


def _labels(
    store: TableSource,
    cutoff: datetime,
    horizon_days: int,
    *,
    column: str,
    eligible: _Query | None,
    positive: _Query,
) -> pd.DataFrame:
    """Label the population at ``cutoff`` (narrowed by ``eligible``) by ``positive``, unchecked."""
    end = cutoff + timedelta(days=horizon_days)
    with (
        open_tables(store) as (con, dialect),
        open_snapshot(con, dialect, cutoff, FeatureWindows()) as snap,
    ):
        people = population(snap).select("customer_id")
        if eligible is not None:
            people = people.inner_join(eligible(snap, end), "customer_id")
        ids = fetch(people)["customer_id"]
        found = fetch(positive(snap, end).select("customer_id").distinct())
    hits = set(found["customer_id"])
    index = pd.Index(sorted(ids), name="customer_id", dtype="str")
    frame = pd.DataFrame({column: index.isin(list(hits))}, index=index)
    log.info(
        "%s at %s (+%d d): %d of %d", column, cutoff, horizon_days, frame[column].sum(), len(frame)
    )
    return frame


def churn_labels(
    store: TableSource, as_of: datetime | date | str, horizon_days: int, *, buyers_only: bool = True
) -> pd.DataFrame:
    """Churn: no purchase in ``[as_of, as_of + horizon_days)``.

    A non-contractual retailer never sees a customer leave; churn is read as
    silence. Customers who never bought before ``as_of`` cannot churn and are
    left out unless ``buyers_only=False``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), one bool column ``churned``.

    Raises
    ------
    ValidationError
        If ``as_of`` is outside the store's data, or the label window ends after
        the data (:func:`check_label_window`).
    ConfigError
        If ``horizon_days`` is not a positive whole number of days.
    """
    cutoff = _checked_cutoff(store, as_of, horizon_days)
    return _churn(store, cutoff, horizon_days, buyers_only=buyers_only)


def _churn(
    store: TableSource, cutoff: datetime, horizon_days: int, *, buyers_only: bool
) -> pd.DataFrame:
    def bought(snap: Snapshot, end: datetime) -> ir.Table:
        return _orders_between(snap, snap.as_of, end)

    frame = _labels(
        store,
        cutoff,
        horizon_days,
        column="churned",
        eligible=(lambda snap, _end: _buyers(snap)) if buyers_only else None,
        positive=bought,
    )
    frame["churned"] = ~frame["churned"]
    return frame


def purchase_labels(
    store: TableSource,
    as_of: datetime | date | str,
    horizon_days: int,
    *,
    category: str | None = None,
) -> pd.DataFrame:
    """Purchase propensity: at least one order in ``[as_of, as_of + horizon_days)``.

    With ``category``, the order must hold a line of a product in that category.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), one bool column ``purchased``.

    Raises
    ------
    ValidationError
        If ``as_of`` is outside the store's data, or the label window ends after
        the data (:func:`check_label_window`).
    ConfigError
        If ``horizon_days`` is not a positive whole number of days.
    NotFoundError
        If no product in the store has ``category`` (see :func:`stored_category`).
    """
    cutoff = _checked_cutoff(store, as_of, horizon_days)
    if category is not None:
        category = stored_category(store, category)

    def bought(snap: Snapshot, end: datetime) -> ir.Table:
        orders = _orders_between(snap, snap.as_of, end)
        if category is None:
            return orders
        items = snap.raw("order_item")
        products = snap.raw("product")
        in_category = items.inner_join(
            products.filter(products.category == category), "product_id"
        ).select("order_id")
        return orders.filter(orders.order_id.isin(in_category.order_id))

    return _labels(store, cutoff, horizon_days, column="purchased", eligible=None, positive=bought)


def stored_category(store: TableSource, category: str) -> str:
    """Return the product category as stored: a code, or its Chinese name (美妆 → ``beauty``).

    A category no product has would label everyone negative, so it is refused
    with the store's categories (and the closest one) instead.

    Raises
    ------
    NotFoundError
        If no product in the store has the category.
    """
    code = CATEGORY_NAMES.get(str(category).strip(), str(category).strip())
    with open_tables(store) as (con, _dialect):
        products = con.table("product")
        found = fetch(products.select("category").distinct())["category"].dropna()
    known = sorted(str(c) for c in found)
    if code in known:
        return code
    close = difflib.get_close_matches(code.lower(), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise NotFoundError(
        f"No product in the store has the category {category!r}, so no one could be "
        f"labelled as buying in it.{hint} The store's categories: "
        f"{', '.join(known) or 'none (load products first)'}."
    )


def _holds_downgradable_tier(snap: Snapshot, _end: datetime) -> ir.Table:
    changes = snap.table("tier_change")
    changes = changes.filter(changes.changed_at < snap.as_of)
    latest = changes.group_by("customer_id").agg(changed_at=changes.changed_at.max())
    current = changes.inner_join(latest, ["customer_id", "changed_at"])
    tiers = snap.raw("tier")
    lowest = tiers.level.min()
    held = current.inner_join(tiers, current.to_tier == tiers.tier_id)
    return held.filter(held.level > lowest.as_scalar()).select("customer_id").distinct()


def tier_downgrade_labels(
    store: TableSource, as_of: datetime | date | str, horizon_days: int
) -> pd.DataFrame:
    """Tier downgrade: a ``down`` tier change in ``[as_of, as_of + horizon_days)``.

    Only customers holding a tier above the lowest at ``as_of`` can be downgraded.
    As for the other labels, the window must end by the end of the data, which
    the last order marks: tier changes are computed from purchases.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), one bool column ``downgraded``.

    Raises
    ------
    ValidationError
        If ``as_of`` is outside the store's data, or the label window ends after
        the data (:func:`check_label_window`).
    ConfigError
        If ``horizon_days`` is not a positive whole number of days.
    """
    cutoff = _checked_cutoff(store, as_of, horizon_days)

    def downgraded(snap: Snapshot, end: datetime) -> ir.Table:
        changes = snap.table("tier_change")
        window = (changes.changed_at >= snap.as_of) & (changes.changed_at < end)
        return changes.filter(window & (changes.direction == "down"))

    return _labels(
        store,
        cutoff,
        horizon_days,
        column="downgraded",
        eligible=_holds_downgradable_tier,
        positive=downgraded,
    )


def last_order_at(store: TableSource) -> datetime | None:
    """Time of the latest order in the store: where labelled data ends. None if no orders."""
    with open_tables(store) as (con, _dialect):
        orders = con.table("orders")
        found = fetch(orders.aggregate(last=orders.ordered_at.max()))["last"].iloc[0]
    return None if pd.isna(found) else pd.Timestamp(found).to_pydatetime()


def churn_sensitivity(
    store: TableSource,
    as_of: datetime | date | str,
    *,
    horizons: Sequence[int] = SENSITIVITY_HORIZONS,
    buyers_only: bool = True,
) -> pd.DataFrame:
    """How the churn definition's horizon changes who is flagged.

    A horizon whose window ends after the data (:func:`check_label_window`) keeps
    its row, marked incomplete, with no ``flagged`` or ``prevalence``: the data
    cannot tell who churned over it.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``horizon_days``; columns ``customers`` (int), ``flagged``
        (Int64, customers labelled churned; ``<NA>`` if incomplete),
        ``prevalence`` (float; NaN if incomplete) and ``complete`` (bool: the
        label window ends by the end of the data, so the data covers it).

    Raises
    ------
    ValidationError
        If ``as_of`` is outside the store's data (:func:`~crm_ml.features.check_as_of`).
    """
    span = data_span(store)
    cutoff = check_as_of(store, as_of, span=span)
    data_end = end_of_data(cast(datetime, span.last_order))  # check_as_of refused no orders
    rows = []
    for horizon in horizons:
        labels = _churn(store, cutoff, check_horizon(horizon), buyers_only=buyers_only)["churned"]
        complete = cutoff + timedelta(days=horizon) <= data_end
        rows.append(
            {
                "horizon_days": horizon,
                "customers": len(labels),
                "flagged": int(labels.sum()) if complete else pd.NA,
                "prevalence": float(labels.mean()) if complete and len(labels) else float("nan"),
                "complete": complete,
            }
        )
    return pd.DataFrame(rows).set_index("horizon_days").astype({"flagged": "Int64"})
