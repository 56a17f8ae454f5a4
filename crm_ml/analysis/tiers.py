"""Tier movement: each customer's tier at one date against their tier at a later date.

A customer's tier at a date is the ``to_tier`` of their last ``tier_change``
strictly before it (the state just before that instant); customers with no
change by then have no tier, shown as ``(none)``. Tiers are ordered by
``tier.level`` (lowest first), so in the movement matrix cells right of the
diagonal are upgrades and cells left of it downgrades.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crm_ml.analysis._common import Instant, as_instant
from crm_ml.analysis._plot import draw_heatmap, finish, label, new_figure
from crm_ml.analysis._read import read_tier_changes, read_tiers
from crm_ml.errors import ConfigError
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

#: Label of "no tier yet" in movement matrices.
NO_TIER = "(none)"
#: How a tier may be named: its id, or the tier table's ``name`` or display ``label``.
TIER_LABELS = ("tier_id", "name", "label")


def tier_at(changes: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Each customer's tier just before ``at``.

    Parameters
    ----------
    changes : pandas.DataFrame
        Columns ``customer_id``, ``changed_at``, ``to_tier``.
    at : pandas.Timestamp
        Changes at or after it are ignored.

    Returns
    -------
    pandas.Series
        Indexed by ``customer_id``, named ``tier``; customers without a tier are absent.
    """
    # Two changes at the same instant: the higher tier id wins, as in the features' tier_level.
    before = changes[changes["changed_at"] < at].sort_values(
        ["customer_id", "changed_at", "to_tier"]
    )
    last = before.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    return last["to_tier"].rename("tier")


def tier_order(tiers: pd.DataFrame, seen: pd.Series) -> list[str]:
    """Tier ids from lowest to highest level; ids missing from the tier table go last."""
    known = tiers["tier_id"].tolist()
    unknown = sorted(set(seen.dropna()) - set(known))
    if unknown:
        log.warning("tier_change names tiers missing from the tier table: %s", unknown)
    return [*known, *unknown]


def tier_movement(
    store: Store,
    date_a: Instant,
    date_b: Instant,
    *,
    normalize: bool = False,
    labels: str = "tier_id",
) -> pd.DataFrame:
    """Matrix of customers by tier at ``date_a`` (rows) and at ``date_b`` (columns).

    ``date_b`` is the analysis' ``as_of``: no change at or after it is read.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    date_a, date_b : datetime or str
        The two dates, ``date_a < date_b``.
    normalize : bool
        Show each row as shares of the customers who started in that tier.
    labels : str
        ``"tier_id"``, ``"name"`` or ``"label"`` (the tier table's name, e.g.
        ``gold``, or display label, e.g. ``金卡会员``) for rows and columns.

    Returns
    -------
    pandas.DataFrame
        Square: index ``tier_a`` and columns ``tier_b``, both ``(none)`` then
        tiers by level. Counts (int64) or row shares (float64, NaN for empty rows).

    Raises
    ------
    ConfigError
        If ``date_a`` is not before ``date_b`` or ``labels`` is unknown.
    """
    a, b = as_instant(date_a, name="date_a"), as_instant(date_b, name="date_b")
    if not a < b:
        raise ConfigError(f"date_a ({a}) must be before date_b ({b}).")
    if labels not in TIER_LABELS:
        raise ConfigError(f"labels={labels!r} must be 'tier_id', 'name' or 'label'.")
    changes, tiers = read_tier_changes(store, b), read_tiers(store)
    pairs = pd.concat([tier_at(changes, b).rename("tier_b"), tier_at(changes, a)], axis=1)
    pairs["tier_a"] = pairs["tier"].fillna(NO_TIER)
    order = [NO_TIER, *tier_order(tiers, pairs["tier_b"])]
    matrix = pd.crosstab(pairs["tier_a"], pairs["tier_b"]).reindex(
        index=order, columns=order, fill_value=0
    )
    matrix = matrix.rename_axis(index="tier_a", columns="tier_b").astype("int64")
    if labels != "tier_id":
        names = dict(zip(tiers["tier_id"], tiers[labels], strict=True))
        matrix = matrix.rename(index=names, columns=names)
    if normalize:
        totals = matrix.sum(axis=1)
        return matrix.div(totals.where(totals > 0), axis=0)
    return matrix


def tier_movement_summary(matrix: pd.DataFrame) -> pd.DataFrame:
    """Upgrades, unchanged and downgrades per starting tier, from a count matrix.

    Parameters
    ----------
    matrix : pandas.DataFrame
        A square count matrix from :func:`tier_movement` (``normalize=False``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``tier_a``; columns ``customers``, ``new`` (no tier at the
        start), ``upgraded``, ``unchanged``, ``downgraded`` (int64) and
        ``upgrade_rate``, ``downgrade_rate`` (shares of ``customers`` who had a tier).
    """
    values = matrix.to_numpy(dtype="int64")
    rows, cols = np.indices(values.shape)
    starts_tierless = (matrix.index == NO_TIER)[:, None] & np.ones_like(values, dtype=bool)
    parts = {
        "customers": values,
        "new": np.where(starts_tierless, values, 0),
        "upgraded": np.where(~starts_tierless & (cols > rows), values, 0),
        "unchanged": np.where(~starts_tierless & (cols == rows), values, 0),
        "downgraded": np.where(~starts_tierless & (cols < rows), values, 0),
    }
    summary = pd.DataFrame({k: v.sum(axis=1) for k, v in parts.items()}, index=matrix.index)
    had_tier = (summary["customers"] - summary["new"]).astype("float64")
    summary["upgrade_rate"] = summary["upgraded"] / had_tier.where(had_tier > 0)
    summary["downgrade_rate"] = summary["downgraded"] / had_tier.where(had_tier > 0)
    return summary


def plot_tier_movement(matrix: pd.DataFrame, *, lang: str = "en") -> Figure:
    """Heatmap of a :func:`tier_movement` matrix (counts or row shares).

    Parameters
    ----------
    matrix : pandas.DataFrame
        The matrix to draw.
    lang : str
        ``"en"`` or ``"zh"`` labels.
    """
    fig, ax = new_figure(6.5, 5.5)
    shares = bool(np.issubdtype(matrix.to_numpy().dtype, np.floating))
    draw_heatmap(ax, matrix, fmt=".0%" if shares else ",.0f", cmap="Purples")
    ax.set_xlabel(label("tier_b", lang))
    ax.set_ylabel(label("tier_a", lang))
    ax.set_title(label("tier_movement", lang))
    return finish(fig, lang)
