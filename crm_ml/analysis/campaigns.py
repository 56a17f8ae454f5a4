"""Campaign response: treatment against a randomised control group, with uplift and its CI.

Per campaign, with ``n`` contacts and ``r`` responders per group and rates
``p = r / n``:

- ``uplift = p_treatment - p_control`` (absolute, in rate points);
- its ``confidence`` interval is the normal (Wald) approximation for a
  difference of two independent proportions,
  ``uplift ± z × sqrt(p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c)``;
- ``p_value`` is the two-sided test of zero uplift on the same standard error,
  so ``significant`` (p < 1 - confidence) agrees with the interval excluding 0;
- ``incremental_responders = uplift × n_treatment``: responses the campaign caused.

The approximation is poor for small groups or rates near 0 or 1 (say, fewer
than 10 responders or non-responders in a group); the interval is then
reported but should be read with care. Only contacts made before ``as_of`` and
responses made before ``as_of`` are counted, so a campaign still running shows
its response so far (``complete`` is False).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from crm_ml.analysis._common import Instant, as_instant, require_columns
from crm_ml.analysis._plot import finish, label, new_figure
from crm_ml.analysis._read import read_campaign_contacts, read_campaigns
from crm_ml.errors import ConfigError
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

_GROUPS = ("treatment", "control")


def _group_counts(contacts: pd.DataFrame) -> pd.DataFrame:
    """Contacts and responders per campaign and group, one column pair per group."""
    grouped = contacts.groupby(["campaign_id", "group"])["responded"]
    frame = pd.DataFrame(index=pd.Index(contacts["campaign_id"].unique(), name="campaign_id"))
    for column, counts in (("contacts", grouped.size()), ("responders", grouped.sum())):
        wide = counts.unstack("group").reindex(index=frame.index, columns=list(_GROUPS))
        for group in _GROUPS:
            frame[f"{group}_{column}"] = wide[group].fillna(0).astype("int64")
    return frame[[f"{g}_{c}" for g in _GROUPS for c in ("contacts", "responders")]]


def response_uplift(contacts: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Response rates and uplift with its confidence interval, per campaign.

    Parameters
    ----------
    contacts : pandas.DataFrame
        One row per contact: ``campaign_id``, ``group`` (``treatment`` or
        ``control``) and ``responded`` (bool).
    confidence : float
        Coverage of the interval, e.g. 0.95.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``campaign_id`` (sorted); columns ``treatment_contacts``,
        ``treatment_responders``, ``control_contacts``, ``control_responders``
        (int64), ``treatment_rate``, ``control_rate``, ``uplift``,
        ``uplift_ci_low``, ``uplift_ci_high``, ``p_value`` (float64, NaN when a
        group is empty), ``significant`` (bool) and ``incremental_responders``.
    """
    # Imported here: scipy.stats takes seconds to import, and the churn lists
    # (crm_ml.segments) import this package for revenue_12m without needing it.
    from scipy.stats import norm

    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1; got {confidence!r}.")
    require_columns(contacts, ("campaign_id", "group", "responded"), what="The contacts frame")
    frame = _group_counts(contacts.astype({"responded": bool})).sort_index()
    n_t = frame["treatment_contacts"].where(frame["treatment_contacts"] > 0)
    n_c = frame["control_contacts"].where(frame["control_contacts"] > 0)
    p_t, p_c = frame["treatment_responders"] / n_t, frame["control_responders"] / n_c
    frame["treatment_rate"], frame["control_rate"] = p_t, p_c
    frame["uplift"] = p_t - p_c
    se = np.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    frame["uplift_ci_low"] = frame["uplift"] - z * se
    frame["uplift_ci_high"] = frame["uplift"] + z * se
    z_stat = frame["uplift"] / se.where(se > 0)
    p_value = pd.Series(2 * norm.sf(z_stat.abs()), index=frame.index)
    # With zero variance (everyone or no one responds in both groups) the data leave no doubt.
    certain = (se == 0) & frame["uplift"].notna()
    frame["p_value"] = p_value.mask(certain, np.where(frame["uplift"] == 0, 1.0, 0.0))
    frame["significant"] = (frame["p_value"] < 1 - confidence).fillna(False).astype(bool)
    frame["incremental_responders"] = frame["uplift"] * frame["treatment_contacts"]
    return frame


def campaign_response(
    store: Store,
    as_of: Instant,
    *,
    campaign_ids: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Treatment against control response, uplift and its CI for each campaign.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    as_of : datetime or str
        Only contacts and responses before it are counted.
    campaign_ids : sequence of str, optional
        Campaigns to report; all campaigns with contacts by default.
    confidence : float
        Coverage of the uplift interval.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``campaign_id``; columns ``name``, ``channel``, ``start_at``,
        ``end_at``, ``complete`` (ended before ``as_of``), then the columns of
        :func:`response_uplift` (see the module notes for the statistics).
    """
    as_of = as_instant(as_of)
    contacts = read_campaign_contacts(store, as_of)
    if campaign_ids is not None:
        contacts = contacts[contacts["campaign_id"].isin(list(campaign_ids))]
    stats = response_uplift(contacts, confidence=confidence)
    campaigns = read_campaigns(store).set_index("campaign_id")
    info = campaigns.reindex(stats.index)
    info["complete"] = (info["end_at"] < as_of).astype(bool)
    log.info("Campaign response for %d campaign(s) as of %s", len(stats), as_of)
    return pd.concat([info, stats], axis=1)


def plot_campaign_uplift(response: pd.DataFrame, *, lang: str = "en") -> Figure:
    """Uplift per campaign with its confidence interval, as horizontal error bars.

    Parameters
    ----------
    response : pandas.DataFrame
        The output of :func:`campaign_response` or :func:`response_uplift`.
    lang : str
        ``"en"`` or ``"zh"`` labels.
    """
    require_columns(response, ("uplift", "uplift_ci_low", "uplift_ci_high"), what="The response")
    fig, ax = new_figure(7.0, max(3.0, 0.4 * len(response) + 1.5))
    y = np.arange(len(response))
    low = response["uplift"] - response["uplift_ci_low"]
    err = np.vstack([low, response["uplift_ci_high"] - response["uplift"]])
    ax.errorbar(response["uplift"], y, xerr=err, fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    names = response["name"] if "name" in response else response.index.to_series()
    ax.set_yticks(y, [str(n) for n in names])
    # Uplift is a difference of two rates: percentage points, not percent.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{100 * x:+.1f}" if x else "0"))
    ax.set_xlabel(label("uplift", lang))
    ax.set_ylabel(label("campaign", lang))
    ax.set_title(label("campaign_uplift", lang))
    return finish(fig, lang)
