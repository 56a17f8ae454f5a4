"""Customer value: AOV × frequency quadrants and grades, and revenue concentration (80/20).

The value quadrants are those of the ``value_quadrant_a`` … ``value_quadrant_d``
tags (:mod:`crm_ml.tags.library`): :func:`tag_value_quadrant` evaluates the
tags' own rules, so a report and the tags never disagree on who is in which
quadrant. As the library defines them, they split the customers who bought in
the last 365 days at the middle of their percentile ranks, by lifetime
``avg_order_value`` and by ``orders_365d``.

:func:`customer_value` measures value over a trailing window
``[as_of - window_days, as_of)``: ``orders`` (frequency), ``revenue`` (net of
refunds known by ``as_of``) and ``aov = revenue / orders``. Only customers who
bought in the window are rated. :func:`value_quadrant` rates such a frame by
cut points of your choice; it is not the tags' definition, so its quadrant
names (:data:`QUADRANTS`) differ from the tags'. Its cut points (documented,
overridable):

- ``scheme="quadrant"``: one cut per axis, by default the median among rated
  customers; *high* means strictly above the cut. With most customers buying
  once, the frequency median is 1, so "high frequency" means repeat buyers.
- ``scheme="grade"``: two cuts per axis, by default the 1/3 and 2/3 quantiles,
  giving levels 0–2 per axis (strictly above a cut moves up a level). The
  grade is ``A`` to ``E`` from the sum of both levels: A = top on both, B =
  top and middle, C = top and bottom or middle and middle, D = middle and
  bottom, E = bottom on both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crm_ml.analysis._common import Instant, as_instant, require_columns, require_positive
from crm_ml.analysis._plot import finish, label, new_figure
from crm_ml.analysis._read import read_orders
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store.connection import Store
from crm_ml.tags import evaluate_tags
from crm_ml.tags.definitions import TagDefinition, load_tag_definitions
from crm_ml.tags.library import builtin_tags

QUADRANTS = ("high_freq_high_aov", "high_freq_low_aov", "low_freq_high_aov", "low_freq_low_aov")
GRADES = ("A", "B", "C", "D", "E")
_DEFAULT_QUANTILES = {"quadrant": (0.5,), "grade": (1 / 3, 2 / 3)}

#: The value-quadrant tags and what each one means: (high AOV, high frequency).
QUADRANT_TAGS = {
    "value_quadrant_a": (True, True),
    "value_quadrant_b": (True, False),
    "value_quadrant_c": (False, True),
    "value_quadrant_d": (False, False),
}


def customer_value(store: Store, as_of: Instant, *, window_days: int = 365) -> pd.DataFrame:
    """Orders, revenue and average order value per customer over a trailing window.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        The window is ``[as_of - window_days, as_of)``.
    window_days : int
        Length of the window in days.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (buyers in the window only, sorted); columns
        ``orders`` (int64), ``revenue`` and ``aov`` (float64).
    """
    as_of = as_instant(as_of)
    require_positive(window_days, name="window_days")
    orders = read_orders(store, as_of, since=as_of - pd.Timedelta(days=window_days))
    value = orders.groupby("customer_id").agg(
        orders=("order_id", "count"), revenue=("revenue", "sum")
    )
    value["aov"] = value["revenue"] / value["orders"]
    return value.astype({"orders": "int64", "revenue": "float64", "aov": "float64"})


def value_cut_points(values: pd.DataFrame, *, scheme: str = "quadrant") -> dict[str, list[float]]:
    """Default cut points of ``scheme`` for ``values`` (see the module notes).

    Returns
    -------
    dict
        ``{"aov": [...], "frequency": [...]}``, one cut per axis for
        ``"quadrant"`` and two for ``"grade"``.
    """
    if scheme not in _DEFAULT_QUANTILES:
        raise ConfigError(f"scheme={scheme!r} must be 'quadrant' or 'grade'.")
    require_columns(values, ("orders", "aov"), what="The customer value frame")
    quantiles = list(_DEFAULT_QUANTILES[scheme])
    return {
        "aov": [float(v) for v in values["aov"].quantile(quantiles)],
        "frequency": [float(v) for v in values["orders"].quantile(quantiles)],
    }


def _levels(series: pd.Series, cuts: Sequence[float]) -> pd.Series:
    """0 at or below the first cut, +1 for each cut the value is strictly above."""
    return sum((series > cut).astype("int64") for cut in cuts)  # type: ignore[return-value]


def _check_cuts(cuts: Sequence[float] | None, n: int, name: str) -> None:
    if cuts is not None and len(cuts) != n:
        raise ConfigError(f"{name} needs {n} cut point(s) for this scheme; got {list(cuts)}.")


def value_quadrant(
    values: pd.DataFrame,
    *,
    scheme: str = "quadrant",
    aov_cuts: Sequence[float] | None = None,
    frequency_cuts: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Rate customers by average order value × purchase frequency.

    Parameters
    ----------
    values : pandas.DataFrame
        The output of :func:`customer_value` (columns ``orders``, ``aov``).
    scheme : str
        ``"quadrant"`` (4 quadrants) or ``"grade"`` (A–E).
    aov_cuts, frequency_cuts : sequence of float, optional
        Cut points (1 for quadrants, 2 for grades); defaults in the module notes.

    Returns
    -------
    pandas.DataFrame
        ``values`` with ``aov_level``, ``frequency_level`` (int64) and
        ``quadrant`` (categorical of :data:`QUADRANTS`) or ``value_grade``
        (categorical A–E). The cut points used are in ``.attrs["cuts"]``.
    """
    cuts = value_cut_points(values, scheme=scheme)
    n = len(cuts["aov"])
    _check_cuts(aov_cuts, n, "aov_cuts")
    _check_cuts(frequency_cuts, n, "frequency_cuts")
    cuts = {
        "aov": list(aov_cuts) if aov_cuts is not None else cuts["aov"],
        "frequency": list(frequency_cuts) if frequency_cuts is not None else cuts["frequency"],
    }
    rated = values.copy()
    rated["aov_level"] = _levels(rated["aov"], cuts["aov"])
    rated["frequency_level"] = _levels(rated["orders"], cuts["frequency"])
    if scheme == "quadrant":
        code = 2 * (1 - rated["frequency_level"]) + (1 - rated["aov_level"])
        rated["quadrant"] = pd.Categorical.from_codes(
            code.to_numpy(), dtype=pd.CategoricalDtype(list(QUADRANTS))
        )
    else:
        code = 4 - rated["aov_level"] - rated["frequency_level"]
        rated["value_grade"] = pd.Categorical.from_codes(
            code.to_numpy(), dtype=pd.CategoricalDtype(list(GRADES), ordered=True)
        )
    rated.attrs["cuts"] = cuts
    return rated


def value_quadrant_summary(rated: pd.DataFrame, *, by: str = "quadrant") -> pd.DataFrame:
    """Summarise customers and revenue per quadrant or grade.

    Parameters
    ----------
    rated : pandas.DataFrame
        The output of :func:`tag_value_quadrant` or :func:`value_quadrant`.
    by : str
        ``"quadrant"`` or ``"value_grade"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by`` (every category, empty ones included); columns
        ``customers`` (int64), ``revenue``, ``customer_share``,
        ``revenue_share``, ``aov`` (the group's revenue per order) and
        ``orders_per_customer`` (float64).
    """
    require_columns(rated, (by, "orders", "revenue"), what="The rated frame")
    summary = rated.groupby(by, observed=False).agg(
        customers=("orders", "size"), orders=("orders", "sum"), revenue=("revenue", "sum")
    )
    summary["customer_share"] = summary["customers"] / max(len(rated), 1)
    total = rated["revenue"].sum()
    summary["revenue_share"] = summary["revenue"] / total if total > 0 else np.nan
    summary["aov"] = summary["revenue"] / summary["orders"].where(summary["orders"] > 0)
    summary["orders_per_customer"] = summary["orders"] / summary["customers"].where(
        summary["customers"] > 0
    )
    return summary.drop(columns="orders").astype({"customers": "int64"})


def _quadrant_definitions(store: Store) -> list[TagDefinition]:
    """Return the value-quadrant tags as stored, or as the built-in library defines them."""
    stored = {d.name: d for d in load_tag_definitions(store) if d.name in QUADRANT_TAGS}
    builtin = {d.name: d for d in builtin_tags() if d.name in QUADRANT_TAGS}
    return [stored.get(name, builtin[name]) for name in QUADRANT_TAGS]


def _quadrant_of(members: dict[str, pd.Index]) -> pd.Series:
    """Each customer's quadrant tag; refuses a customer the rules put in two quadrants."""
    tags = pd.concat(
        [pd.Series(name, index=members[name], dtype="str") for name in QUADRANT_TAGS]
    ).sort_index()
    twice = tags.index[tags.index.duplicated()].unique()
    if len(twice):
        raise ValidationError(
            f"The value-quadrant tag rules overlap: {len(twice)} customer(s), e.g. "
            f"{', '.join(map(str, twice[:3]))}, match two of {', '.join(QUADRANT_TAGS)}. "
            "Each customer must fall in at most one; check the rules with "
            "crm_ml.tags.tag_definitions_frame(store)."
        )
    return tags


def tag_value_quadrant(
    store: Store, features: pd.DataFrame, as_of: Instant, *, labels: str = "name"
) -> pd.DataFrame:
    """Rate customers by the value-quadrant tags' rules, evaluated at ``as_of`` (nothing stored).

    Parameters
    ----------
    store : Store
        Read for the tags' definitions (the built-in ones where none is stored)
        and for the revenue.
    features : pandas.DataFrame
        Indexed by ``customer_id``: every customer's features as of ``as_of``
        (the tags rank customers among them).
    as_of : datetime or str
        The date the tags are evaluated at.
    labels : str
        Name the quadrants by the tags' ``"name"`` (``value_quadrant_a``) or
        ``"label"`` (``A类: 高客单高频``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (the customers in a quadrant, sorted);
        columns ``orders`` (``orders_365d``, int64), ``aov``
        (``avg_order_value``, what the tags rank), ``revenue`` (of the last
        365 days, net of refunds, as :func:`customer_value`), ``aov_level``
        and ``frequency_level`` (1 = high, int64) and ``quadrant``
        (categorical, A to D). ``.attrs["cuts"]`` holds the highest AOV and
        order count still rated low, for :func:`plot_value_quadrant`.

    Raises
    ------
    ValidationError
        If ``labels`` is unknown, a feature the rules need is missing, or
        the rules put a customer in two quadrants.
    """
    if labels not in ("name", "label"):
        raise ValidationError(f"labels={labels!r} must be 'name' or 'label'.")
    require_columns(features, ("orders_365d", "avg_order_value"), what="The features frame")
    definitions = _quadrant_definitions(store)
    tags = _quadrant_of(evaluate_tags(store, features, as_of, definitions=definitions))
    rated = pd.DataFrame(index=tags.index)
    rated["orders"] = features["orders_365d"].reindex(tags.index).astype("int64")
    rated["aov"] = features["avg_order_value"].reindex(tags.index).astype("float64")
    revenue = customer_value(store, as_of)["revenue"]
    rated["revenue"] = revenue.reindex(tags.index).fillna(0.0).astype("float64")
    rated["aov_level"] = tags.map(lambda tag: int(QUADRANT_TAGS[tag][0])).astype("int64")
    rated["frequency_level"] = tags.map(lambda tag: int(QUADRANT_TAGS[tag][1])).astype("int64")
    names = {d.name: d.name if labels == "name" else (d.label or d.name) for d in definitions}
    rated["quadrant"] = pd.Categorical(tags.map(names), categories=list(names.values()))
    rated.attrs["cuts"] = {
        "aov": _highest_low(rated["aov"], rated["aov_level"]),
        "frequency": _highest_low(rated["orders"], rated["frequency_level"]),
    }
    return rated


def _highest_low(values: pd.Series, levels: pd.Series) -> list[float]:
    """Return the highest value rated low (level 0), the cut a plot draws; [] if none is low."""
    low = values[levels == 0].dropna()
    return [float(low.max())] if len(low) else []


def _check_revenue(revenue: pd.Series) -> np.ndarray:
    values = revenue.to_numpy(dtype="float64")
    if np.isnan(values).any() or (values < 0).any():
        raise ValidationError(
            "Revenue for a concentration analysis must be non-negative numbers; "
            f"found {int(np.isnan(values).sum())} missing and {int((values < 0).sum())} negative."
        )
    return np.sort(values)


def lorenz_curve(revenue: pd.Series) -> pd.DataFrame:
    """Compute the Lorenz curve of revenue across customers (smallest spenders first).

    Parameters
    ----------
    revenue : pandas.Series
        One non-negative value per customer, e.g. ``customer_value(...)["revenue"]``.

    Returns
    -------
    pandas.DataFrame
        ``n + 1`` rows from ``(0, 0)`` to ``(1, 1)``; columns ``customer_share``
        (cumulative share of customers) and ``revenue_share`` (their cumulative
        share of revenue); default RangeIndex.
    """
    values = _check_revenue(revenue)
    total = values.sum()
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    return pd.DataFrame(
        {
            "customer_share": np.arange(len(values) + 1) / max(len(values), 1),
            "revenue_share": cumulative / total if total > 0 else np.full_like(cumulative, np.nan),
        }
    )


def gini(revenue: pd.Series) -> float:
    """Gini coefficient of revenue across customers (0 = equal spend, → 1 = one customer).

    Equals ``1 - 2 ×`` the area under :func:`lorenz_curve`; NaN without revenue.
    """
    values = _check_revenue(revenue)
    n, total = len(values), values.sum()
    if n == 0 or total <= 0:
        return float("nan")
    ranks = np.arange(1, n + 1)
    return float(2 * (ranks * values).sum() / (n * total) - (n + 1) / n)


def top_share(revenue: pd.Series, share: float = 0.2) -> float:
    """Share of revenue from the top ``share`` of customers (interpolated on the Lorenz curve)."""
    if not 0 <= share <= 1:
        raise ConfigError(f"share must be between 0 and 1; got {share!r}.")
    curve = lorenz_curve(revenue)
    below = np.interp(1 - share, curve["customer_share"], curve["revenue_share"])
    return float(1 - below)


def concentration_summary(
    revenue: pd.Series, *, shares: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.5)
) -> pd.DataFrame:
    """Revenue share of the top 1 %, 5 %, 10 %, 20 % and 50 % of customers.

    Each share is rounded to a whole number of customers, and the revenue
    share is that of exactly those customers.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``top_customer_share``; columns ``customers`` (how many that
        is, int64) and ``revenue_share``.
    """
    n = len(revenue)
    # Half up, not to even: the top 0.5 % of 100 customers is 1 customer.
    customers = [int(np.floor(s * n + 0.5)) for s in shares]
    frame = pd.DataFrame(
        {
            "customers": np.array(customers, dtype="int64"),
            "revenue_share": [top_share(revenue, k / n) if n else np.nan for k in customers],
        },
        index=pd.Index(list(shares), name="top_customer_share"),
    )
    return frame


def plot_lorenz(
    curve: pd.DataFrame, *, gini_value: float | None = None, lang: str = "en"
) -> Figure:
    """Lorenz curve with the line of equal spend; the Gini coefficient in the title if given."""
    require_columns(curve, ("customer_share", "revenue_share"), what="The Lorenz curve")
    fig, ax = new_figure(6.0, 6.0)
    ax.plot(curve["customer_share"], curve["revenue_share"], lw=2, label=label("lorenz", lang))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label=label("equality", lang))
    ax.fill_between(
        curve["customer_share"], curve["revenue_share"], curve["customer_share"], alpha=0.15
    )
    ax.set_xlabel(label("customer_share", lang))
    ax.set_ylabel(label("revenue_share", lang))
    ax.xaxis.set_major_formatter("{x:.0%}")
    ax.yaxis.set_major_formatter("{x:.0%}")
    title = label("lorenz", lang)
    ax.set_title(f"{title} — Gini {gini_value:.2f}" if gini_value is not None else title)
    ax.legend(loc="upper left")
    return finish(fig, lang)


def plot_value_quadrant(rated: pd.DataFrame, *, lang: str = "en") -> Figure:
    """Scatter of AOV against orders, coloured by quadrant or grade, with the cut lines."""
    require_columns(rated, ("orders", "aov"), what="The rated frame")
    group = "quadrant" if "quadrant" in rated else "value_grade"
    require_columns(rated, (group,), what="The rated frame")
    fig, ax = new_figure()
    for i, (name, part) in enumerate(rated.groupby(group, observed=True)):
        ax.scatter(part["orders"], part["aov"], s=8, alpha=0.5, color=f"C{i}", label=str(name))
    for cut in rated.attrs.get("cuts", {}).get("aov", []):
        ax.axhline(cut, color="grey", ls="--", lw=1)
    for cut in rated.attrs.get("cuts", {}).get("frequency", []):
        ax.axvline(cut, color="grey", ls="--", lw=1)
    ax.set_xlabel(label("frequency", lang))
    ax.set_ylabel(label("aov", lang))
    ax.set_title(label("value_quadrant", lang))
    ax.legend(fontsize=8)
    return finish(fig, lang)
