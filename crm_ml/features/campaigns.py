"""Campaigns: how often a customer is contacted, and how they respond.

Only the treatment group received a message, so control-group rows are not
contacts. A response counts once it has happened (``responded_at`` before
``as_of``; a response without a time is dated at the contact).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from crm_ml.features.backend import Snapshot
from crm_ml.features.spec import DType, Feature, FeatureGroup, FeatureWindows, Fill

NAME = "campaigns"
NAN = float("nan")


def _f(name: str, dtype: DType, unit: str, description: str, fill: Fill) -> Feature:
    return Feature(name, NAME, dtype, unit, description, fill)


def features(windows: FeatureWindows) -> list[Feature]:
    """Declare the campaigns group's features, in output order."""
    r = windows.recent_days
    return [
        _f(
            f"campaign_contacts_{r}d",
            "int64",
            "count",
            f"Campaign messages received (treatment group) in the last {r} days.",
            0,
        ),
        _f(
            "campaign_response_rate",
            "float64",
            "ratio",
            "Responses / campaign messages received before as_of; NaN if none received.",
            NAN,
        ),
        _f(
            "days_since_last_contact",
            "float64",
            "days",
            "Days since the last campaign message received.",
            NAN,
        ),
    ]


def _contacts(snap: Snapshot) -> ir.Table:
    c, r = snap.table("campaign_contact"), snap.windows.recent_days
    c = c.filter((c.contacted_at < snap.as_of) & (c.contact_group == "treatment"))
    responded = c.responded & (ibis.coalesce(c.responded_at, c.contacted_at) < snap.as_of)
    agg = c.group_by("customer_id").agg(
        **{f"campaign_contacts_{r}d": c.count(where=c.contacted_at >= snap.bound(r))},
        _responses=c.count(where=responded),
        _contacts=c.count(),
        _last=c.contacted_at.max(),
    )
    rate = agg._responses.cast("float64") / agg._contacts.cast("float64")
    return agg.select(
        "customer_id",
        f"campaign_contacts_{r}d",
        campaign_response_rate=rate,
        days_since_last_contact=snap.days_before(agg._last),
    )


def expressions(snap: Snapshot) -> list[ir.Table]:
    """Return the campaigns group's queries, each keyed by ``customer_id``."""
    return [_contacts(snap)]


GROUP = FeatureGroup(
    name=NAME,
    description="Campaigns: messages received, response rate, recency of contact.",
    features=features,
    expressions=expressions,
)
