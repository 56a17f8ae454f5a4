"""Retention analyses: frames and figures for a report date ``as_of``.

Every function reads only rows whose event time is before ``as_of`` and
describes the state just before it. Functions that take a :class:`Store` read
it with portable SQLAlchemy Core selects; the rest take and return frames.
Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state), with
English or Chinese labels (``lang="zh"``); either way they draw Chinese data
(campaign, owner, tier names).

- :mod:`~crm_ml.analysis.cohorts`: monthly acquisition cohorts, retention matrices.
- :mod:`~crm_ml.analysis.lifecycle`: new, active, churned, reactivated per period.
- :mod:`~crm_ml.analysis.tiers`: tier movement between two dates.
- :mod:`~crm_ml.analysis.value`: the value-quadrant tags' quadrants, grades, 80/20, Lorenz, Gini.
- :mod:`~crm_ml.analysis.points`: points liability and expiring points.
- :mod:`~crm_ml.analysis.campaigns`: treatment vs control response and uplift.
- :mod:`~crm_ml.analysis.risk`: churn risk and revenue at risk by group.
- :mod:`~crm_ml.analysis.headers`: the tables as a report shows them (:func:`report_table`):
  headers in the report's language, rates as percentages, money with its currency.
"""

from crm_ml.analysis._common import period_freq
from crm_ml.analysis.campaigns import campaign_response, plot_campaign_uplift, response_uplift
from crm_ml.analysis.cohorts import (
    cohort_table,
    plot_retention_curves,
    plot_retention_heatmap,
    retention_matrix,
)
from crm_ml.analysis.customer_360 import Customer360, customer_360, plot_customer_timeline
from crm_ml.analysis.headers import report_table, table_headers
from crm_ml.analysis.lifecycle import (
    churn_rate_trend,
    customer_lifecycle,
    lifecycle_events,
    plot_churn_trend,
)
from crm_ml.analysis.points import (
    customers_with_expiring_points,
    next_points_expiry,
    points_expiring,
    points_liability,
    remaining_lots,
)
from crm_ml.analysis.risk import (
    customer_risk,
    plot_revenue_at_risk,
    revenue_12m,
    revenue_at_risk,
)
from crm_ml.analysis.tiers import (
    plot_tier_movement,
    tier_at,
    tier_movement,
    tier_movement_summary,
)
from crm_ml.analysis.value import (
    concentration_summary,
    customer_value,
    gini,
    lorenz_curve,
    plot_lorenz,
    plot_value_quadrant,
    tag_value_quadrant,
    top_share,
    value_cut_points,
    value_quadrant,
    value_quadrant_summary,
)

__all__ = [
    "Customer360",
    "campaign_response",
    "churn_rate_trend",
    "cohort_table",
    "concentration_summary",
    "customer_360",
    "customer_lifecycle",
    "customer_risk",
    "customer_value",
    "customers_with_expiring_points",
    "gini",
    "lifecycle_events",
    "lorenz_curve",
    "next_points_expiry",
    "period_freq",
    "plot_campaign_uplift",
    "plot_churn_trend",
    "plot_customer_timeline",
    "plot_lorenz",
    "plot_retention_curves",
    "plot_retention_heatmap",
    "plot_revenue_at_risk",
    "plot_tier_movement",
    "plot_value_quadrant",
    "points_expiring",
    "points_liability",
    "remaining_lots",
    "report_table",
    "response_uplift",
    "retention_matrix",
    "revenue_12m",
    "revenue_at_risk",
    "table_headers",
    "tag_value_quadrant",
    "tier_at",
    "tier_movement",
    "tier_movement_summary",
    "top_share",
    "value_cut_points",
    "value_quadrant",
    "value_quadrant_summary",
]
