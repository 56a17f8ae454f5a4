"""Building a contact list: consent at a date, owners, contact details, churn value at risk.

Everything here reads the store with bound parameters and returns frames;
:mod:`crm_ml.segments.export` masks, routes and writes them. A churn list's
value at risk is the retention report's revenue at risk
(:mod:`crm_ml.analysis.risk`): ``p_churn × revenue_12m``, revenue net of refunds.
Who is followed up one to one depends on the date, never on the list: the
value at risk from which they are is that of the top :data:`FOLLOW_UP_SHARE` of
every customer scored (:class:`ChurnRisk`), so a customer on two lists of a day
gets one action. A list shows what its channel and purpose allow only: its
channel's contact details (:data:`CONTACT_COLUMNS`), actions by that channel
without offers unless it is for marketing (:func:`suggest_action`), and no
reasons about who the customer is or their consent (:data:`REASONS_NOT_ON_LISTS`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, or_, select

from crm_ml.analysis.risk import revenue_12m
from crm_ml.errors import ValidationError
from crm_ml.rules import consent_status_at, latest_scores
from crm_ml.rules.context import surviving_ids, to_survivors
from crm_ml.store.admin import utc_now
from crm_ml.store.schema import (
    CONSENT_CHANNELS,
    CONSENT_PURPOSES,
    Customer,
    CustomerIdentity,
    CustomerOwner,
    Order,
)

log = logging.getLogger(__name__)

CHURN_MODEL = "crm-churn"
_CHUNK = 500


def check_channel(channel: str, purpose: str) -> None:
    """Raise :class:`ValidationError` unless the channel and purpose are known consent values."""
    if channel not in CONSENT_CHANNELS:
        raise ValidationError(f"Unknown channel {channel!r}; expected one of {CONSENT_CHANNELS}.")
    if purpose not in CONSENT_PURPOSES:
        raise ValidationError(f"Unknown purpose {purpose!r}; expected one of {CONSENT_PURPOSES}.")


def consent_for(
    conn: Connection, ids: pd.Index, channel: str, purpose: str, on: datetime | None
) -> pd.Series:
    """Return each customer's consent at ``on``: ``granted``, ``withdrawn`` or ``unknown``.

    Decisions made before ``on`` count, as in the features; ``on=None``: the
    latest decision in the store, as list export uses it.

    Consent is the person's, over every record merged into them, as the rules'
    ``consent()`` and the features read it (see
    :func:`crm_ml.rules.consent_status_at`).

    Returns
    -------
    pandas.Series
        Indexed like ``ids``; no consent row counts as ``unknown`` (no consent).
    """
    status = consent_status_at(conn, channel, purpose, on)
    people = to_survivors(pd.Series(ids, index=ids, dtype="str"), surviving_ids(conn))
    result = status.reindex(people.to_numpy()).set_axis(ids).fillna("unknown").astype("str")
    return result.where(result.isin(["granted", "withdrawn"]), "unknown").rename("consent")


def owners_at(conn: Connection, ids: pd.Index, on: datetime) -> pd.DataFrame:
    """Return each customer's account manager at ``on``.

    A merged record's assignments count as the survivor's, as in the features
    (``has_owner``); of assignments in force, the latest started wins.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``ids``; columns ``owner_id`` and ``owner_name`` (missing when unowned).
    """
    rows = conn.execute(
        select(
            CustomerOwner.customer_id,
            CustomerOwner.valid_from,
            CustomerOwner.owner_id,
            CustomerOwner.owner_name,
        ).where(
            CustomerOwner.valid_from <= on,
            or_(CustomerOwner.valid_to.is_(None), CustomerOwner.valid_to > on),
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["customer_id", "valid_from", "owner_id", "owner_name"])
    id_map = surviving_ids(conn)
    frame["customer_id"] = to_survivors(frame["customer_id"].astype("str"), id_map)
    order = ["customer_id", "valid_from", "owner_id"]
    latest = frame.sort_values(order).groupby("customer_id").tail(1).set_index("customer_id")
    people = to_survivors(pd.Series(ids, index=ids, dtype="str"), id_map)
    found = latest[["owner_id", "owner_name"]].reindex(people.to_numpy())
    return found.set_axis(ids)


def owners_when_sent(conn: Connection, ids: pd.Index, on: datetime) -> pd.DataFrame:
    """Return the account manager each customer of a list of ``on`` goes to.

    A list is sent now, even when re-run for an earlier date (consent withdrawn
    since already keeps a customer off it): so it goes to the assignment in
    force now, not to a manager who has left since; a list dated later than
    today goes to the assignment in force at its date.

    Returns
    -------
    pandas.DataFrame
        As :func:`owners_at`: indexed like ``ids``; ``owner_id`` and ``owner_name``.
    """
    return owners_at(conn, ids, max(on, utc_now()))


def contact_details(conn: Connection, ids: pd.Index) -> pd.DataFrame:
    """Return names, phones and emails of customers: the ones to reach them at now.

    ``customer_identity`` is append-only, so a customer's new number or address
    is a new row: of each kind, the most recently recorded verified one is used
    (the same time: the smallest value, so every run agrees), and an unverified
    one only when none of that kind is verified, the latest first as well.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``ids``; columns ``name``, ``phone``, ``email``.
    """
    names: list[Any] = []
    identities: list[Any] = []
    wanted = list(ids)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        names += conn.execute(
            select(Customer.customer_id, Customer.name).where(Customer.customer_id.in_(chunk))
        ).all()
        identities += conn.execute(
            select(
                CustomerIdentity.customer_id,
                CustomerIdentity.kind,
                CustomerIdentity.value,
                CustomerIdentity.verified,
                CustomerIdentity.created_at,
            ).where(
                CustomerIdentity.customer_id.in_(chunk),
                CustomerIdentity.kind.in_(["phone", "email"]),
            )
        ).all()
    frame = pd.DataFrame(names, columns=["customer_id", "name"]).set_index("customer_id")
    ident = pd.DataFrame(identities, columns=["customer_id", "kind", "value", "verified", "at"])
    ident["verified"] = ident["verified"].fillna(False).astype(bool)
    ident = ident.sort_values(
        ["verified", "at", "value"], ascending=[False, False, True], na_position="last"
    )
    best = (
        ident.groupby(["customer_id", "kind"])
        .head(1)
        .pivot(index="customer_id", columns="kind", values="value")
    )
    details = frame.join(best.reindex(columns=["phone", "email"]), how="outer")
    return details.reindex(ids)[["name", "phone", "email"]].astype("string")


#: Reason topics (a stored reason's ``feature``) never shown on a list; scores keep them.
#: A caller needs what the customer did, not who they are: demographics (age band,
#: gender, city tier) go to every account manager otherwise. Nor their consent for
#: channels: "已同意微信营销" on an SMS list reads as leave to use WeChat, while a list
#: is cleared for its own channel and purpose only. Nor what maternity and baby
#: purchases imply (母婴消费占比87%: a pregnancy or a young child; information about
#: children under 14 is sensitive under PIPL). Nor how or when they first came
#: (获客渠道：小程序, 成为客户306天): a caller can do nothing with it, and on the demo's
#: win-back list it took one of three places in 47 % of rows.
REASONS_NOT_ON_LISTS = frozenset(
    {
        "age_band",
        "gender",
        "city_tier",
        "acquisition_channel",
        "tenure_days",
        *(f"consent_{c}_marketing" for c in CONSENT_CHANNELS),
        "affinity_maternity_baby",
        "days_since_maternity_baby",
    }
)


def _reason_text(raw: object, limit: int = 3) -> str:
    """Join the first ``limit`` reasons of a score's JSON list that a list may show into one line.

    Reasons about :data:`REASONS_NOT_ON_LISTS` are skipped, so the next ones fill in.
    """
    if not isinstance(raw, str) or not raw.strip():
        return ""
    try:
        items = json.loads(raw)
    except ValueError:
        return ""
    shown = [
        i for i in items if not isinstance(i, dict) or i.get("feature") not in REASONS_NOT_ON_LISTS
    ]
    texts = [str(i.get("text", "")) if isinstance(i, dict) else str(i) for i in shown]
    return "; ".join([t for t in texts if t][:limit])


#: The only purpose whose lists may carry offers (benefits, coupons, new products).
MARKETING = "marketing"

#: How each channel reaches a customer, as the suggested actions name it: a list
#: is cleared for its channel only, so its actions use no other.
CONTACT_MODES: dict[str, dict[str, str]] = {
    "sms": {"zh": "短信", "en": "SMS"},
    "phone": {"zh": "电话", "en": "phone"},
    "email": {"zh": "邮件", "en": "email"},
    "wechat": {"zh": "企业微信", "en": "WeCom"},
    "app_push": {"zh": "App推送", "en": "app push"},
}

#: The contact details a list of each channel carries besides the name: only what
#: its channel needs, so a list does not hand out details nobody may use.
CONTACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "sms": ("phone",),
    "phone": ("phone",),
    "email": ("email",),
    "wechat": (),
    "app_push": (),
}

#: Suggested retention actions of a marketing list, per language; ``{via}`` is a
#: :data:`CONTACT_MODES` entry, the list's channel. Chinese texts use Chinese
#: punctuation (，：): an ASCII comma also makes every such cell a quoted CSV field.
ACTIONS: dict[str, dict[str, str]] = {
    "no_score": {
        "zh": "暂无流失评分：{via}常规关怀",
        "en": "No churn score yet: routine care by {via}",
    },
    "manager_follow_up": {
        "zh": "客户经理一对一{via}回访，了解原因并提供专属权益",
        "en": "Account manager follows up one-to-one by {via}, asks why and offers an exclusive "
        "benefit",
    },
    "agent_follow_up": {
        "zh": "客服专员{via}回访，了解原因并提供专属权益",
        "en": "A service agent follows up one-to-one by {via}, asks why and offers an exclusive "
        "benefit",
    },
    "points": {
        "zh": "通过{via}提醒即将过期积分，推荐积分兑换",
        "en": "Remind of expiring points by {via} and suggest redeeming them",
    },
    "coupon": {"zh": "通过{via}发放定向优惠券", "en": "Send a targeted coupon by {via}"},
    "care": {
        "zh": "{via}关怀问候，推荐相关新品",
        "en": "Check in by {via} and recommend related new products",
    },
    "routine": {"zh": "{via}常规会员触达", "en": "Routine member outreach by {via}"},
}

#: The one action of a list cleared for another purpose than marketing. Such a list
#: may carry no offer, product or benefit, and the kinds of :data:`ACTIONS` differ
#: only by what they offer.
PURPOSE_ACTIONS: dict[str, dict[str, str]] = {
    "service": {
        "zh": "{via}服务关怀回访（不含营销内容）",
        "en": "Service check-in by {via} (no marketing content)",
    },
    "research": {
        "zh": "{via}邀请参与客户调研（不含营销内容）",
        "en": "Invite to a customer survey by {via} (no marketing content)",
    },
}


#: A customer this likely to churn (``p_churn`` at or above it) whose value at risk is
#: at least :attr:`ChurnRisk.follow_up_from` is followed up one to one.
FOLLOW_UP_P_CHURN = 0.6

#: The share of every customer scored at a list's date whose value at risk earns the
#: one-to-one follow-up (when they are likely to churn): the top 20 %.
FOLLOW_UP_SHARE = 0.2


def _action_key(row: pd.Series, high_value: float) -> str:
    """Return the :data:`ACTIONS` key of one customer: the most at stake gets the most effort.

    The one-to-one follow-up is for a customer likely to churn with a value at
    risk of at least ``high_value`` (and more than nothing: a customer who spent
    nothing in 12 months has no spend to keep). It comes from the customer's
    account manager (``owner_id``); a customer without one (or whose row does
    not say) gets a service agent's.
    """
    p_churn = row.get("p_churn")
    if pd.isna(p_churn):
        return "no_score"
    at_stake = row.get("value_at_risk", 0)
    if p_churn >= FOLLOW_UP_P_CHURN and at_stake >= high_value and at_stake > 0:
        return "agent_follow_up" if pd.isna(row.get("owner_id")) else "manager_follow_up"
    if row.get("points_expiring_30d", 0) and row.get("points_expiring_30d", 0) > 0:
        return "points"
    if row.get("discount_share", 0) and row.get("discount_share", 0) >= 0.3:
        return "coupon"
    if p_churn >= 0.3:
        return "care"
    return "routine"


def suggest_action(
    row: pd.Series, high_value: float, language: str = "zh", *, channel: str, purpose: str
) -> str:
    """Return a suggested retention action for one customer of a churn-risk list.

    ``row`` holds ``p_churn``, ``value_at_risk`` and ``owner_id`` (missing: no
    account manager), and may hold ``points_expiring_30d`` and ``discount_share``.
    ``high_value`` is the value at risk from which a customer likely to churn
    is followed up one to one: a list passes :attr:`ChurnRisk.follow_up_from`,
    the same for every list of its date.
    It is written in ``language`` (``zh`` or ``en``), the language of the
    list, so an agent reading an English list is not handed Chinese actions.
    The list's ``channel`` is the way it says to reach the customer (a phone
    call only on a phone list), and a list for another ``purpose`` than
    marketing gets that purpose's action, without any offer.

    Raises
    ------
    ValidationError
        For an unknown channel or purpose.
    """
    check_channel(channel, purpose)
    via = CONTACT_MODES[channel][language]
    if purpose != MARKETING:
        return PURPOSE_ACTIONS[purpose][language].format(via=via)
    return ACTIONS[_action_key(row, high_value)][language].format(via=via)


@dataclass(frozen=True, eq=False)
class ChurnRisk:
    """The churn scores and 12-month revenue of a list's date, and who is followed up one to one.

    Read once per export (:func:`churn_risk_at`): every list of a date ranks
    and advises a customer by the same numbers.

    Attributes
    ----------
    on : datetime
        The list's date.
    scores : pandas.DataFrame
        The latest batch of :data:`CHURN_MODEL` scores at or before ``on``
        (:func:`crm_ml.rules.latest_scores`), indexed by ``customer_id``;
        empty when there is none.
    revenue_12m : pandas.Series
        :func:`crm_ml.analysis.risk.revenue_12m` at ``on``, indexed by
        ``customer_id`` (buyers only).
    follow_up_from : float or None
        The value at risk from which a customer likely to churn is followed up
        one to one: that of the top :data:`FOLLOW_UP_SHARE` of every customer
        in ``scores`` (the ``1 - FOLLOW_UP_SHARE`` quantile, to the cent).
        Never one list's own percentile, which gave a customer on two lists of
        a day two different actions. None without scores.
    """

    on: datetime
    scores: pd.DataFrame
    revenue_12m: pd.Series
    follow_up_from: float | None


def _value_at_risk(scores: pd.DataFrame, revenue: pd.Series) -> pd.Series:
    """Each scored customer's ``p_churn × revenue_12m``, to the cent as the lists write it."""
    spent = revenue.reindex(scores.index).fillna(0.0).astype("float64")
    return (scores["probability"].astype("float64") * spent).round(2)


def churn_risk_at(conn: Connection, on: datetime) -> ChurnRisk:
    """Return the churn scores and 12-month revenue a list of ``on`` is ranked and advised by.

    ``on`` is the list's date: scores at or before it, orders and refunds
    before it (see :class:`ChurnRisk`).
    """
    scores = latest_scores(conn, CHURN_MODEL, on)
    revenue = revenue_12m(conn, on)
    values = _value_at_risk(scores, revenue)
    cut_off = None if values.empty else round(float(values.quantile(1 - FOLLOW_UP_SHARE)), 2)
    return ChurnRisk(on, scores, revenue, cut_off)


def _warn_unranked(risk: ChurnRisk, ids: pd.Index) -> None:
    """Warn when no customer of a list can be ranked by value at risk, and say why."""
    if ids.empty:
        return  # nobody to rank (e.g. no one consented): nothing to warn about
    if risk.scores.empty:
        log.warning(
            "No %s scores up to %s: the list cannot be ranked by value at risk",
            CHURN_MODEL,
            risk.on,
        )
    elif not ids.isin(risk.scores.index).any():
        log.warning(
            "None of the %d customers of the list has a %s score up to %s (%d customers have "
            "one): they are ranked by 12-month revenue, without a churn-based action",
            len(ids),
            CHURN_MODEL,
            risk.on,
            len(risk.scores),
        )


def churn_details(
    conn: Connection,
    ids: pd.Index,
    on: datetime,
    features: pd.DataFrame | None,
    *,
    channel: str,
    purpose: str,
    language: str = "zh",
    owners: pd.Series | None = None,
    risk: ChurnRisk | None = None,
) -> pd.DataFrame:
    """Return churn probability, 12-month revenue, value at risk, reasons and an action.

    Value at risk is ``p_churn × revenue_12m``, the revenue of the 12 calendar
    months before ``on`` net of refunds: the retention report's revenue at risk
    (:func:`crm_ml.analysis.risk.revenue_12m`). It is read from the store, so
    that the list and the report agree and a list needs no features; the
    features' ``revenue_365d`` is net of refunds too, but over 365 days.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    ids : pandas.Index
        The customers of the list.
    on : datetime
        The list's date: scores at or before it, orders and refunds before it.
    features : pandas.DataFrame, optional
        Indexed by ``customer_id``; ``points_expiring_30d`` and
        ``discount_share`` choose the suggested action.
    channel, purpose : str
        Those the list is cleared for: the action reaches the customer by this
        channel, and has no offer unless the purpose is marketing
        (:func:`suggest_action`).
    language : {"zh", "en"}
        Language of the suggested action (column names stay as below).
    owners : pandas.Series, optional
        Each customer's ``owner_id`` (missing when unowned), as the list routes
        them; by default read with :func:`owners_when_sent`. Only customers with
        an account manager are offered the manager's one-to-one follow-up.
    risk : ChurnRisk, optional
        :func:`churn_risk_at` of ``on``, when the caller has read it already;
        read here otherwise. Its ``follow_up_from`` decides who is followed up
        one to one, whatever else is on the list.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``ids``; columns ``p_churn, revenue_12m, value_at_risk,
        churn_reasons, suggested_action``. The reasons leave out
        :data:`REASONS_NOT_ON_LISTS`.
    """
    risk = churn_risk_at(conn, on) if risk is None else risk
    _warn_unranked(risk, ids)
    scores = risk.scores.reindex(ids)
    context = features.reindex(ids) if features is not None else pd.DataFrame(index=ids)
    frame = pd.DataFrame(
        {
            "p_churn": scores["probability"].astype("float64"),
            "revenue_12m": risk.revenue_12m.reindex(ids).fillna(0.0).astype("float64"),
            "churn_reasons": scores["reasons"].map(_reason_text),
        },
        index=ids,
    )
    frame["value_at_risk"] = (frame["p_churn"] * frame["revenue_12m"]).round(2)
    extra = context.reindex(columns=["points_expiring_30d", "discount_share"])
    # Without scores every row is "no score": the cut-off is never compared.
    high = 0.0 if risk.follow_up_from is None else risk.follow_up_from
    if owners is None:
        owners = owners_when_sent(conn, ids, on)["owner_id"]
    joined = frame.join(extra).assign(owner_id=owners.reindex(ids))
    frame["suggested_action"] = [
        suggest_action(r, high, language, channel=channel, purpose=purpose)
        for _, r in joined.iterrows()
    ]
    frame["p_churn"] = frame["p_churn"].round(3)  # what a retention team reads, not a model input
    return frame[["p_churn", "revenue_12m", "value_at_risk", "churn_reasons", "suggested_action"]]


def recency_days(conn: Connection, ids: pd.Index, on: datetime) -> pd.Series:
    """Return the days from each customer's last order before ``on`` to ``on``.

    As the features' ``recency_days`` (every order counts, a merged record's as
    its survivor's), in whole days rounded as the reasons write them
    ("已177天未购买").

    Returns
    -------
    pandas.Series
        Indexed like ``ids``, named ``recency_days``, dtype ``Int64``; missing
        for a customer who never ordered before ``on``.
    """
    rows = conn.execute(
        select(Order.customer_id, func.max(Order.ordered_at))
        .where(Order.ordered_at < pd.Timestamp(on).to_pydatetime())
        .group_by(Order.customer_id)
    ).all()
    last = pd.DataFrame(rows, columns=["customer_id", "last_order"])
    last["customer_id"] = to_survivors(last["customer_id"].astype("str"), surviving_ids(conn))
    latest = pd.to_datetime(last.groupby("customer_id")["last_order"].max())
    days = (pd.Timestamp(on) - latest) / pd.Timedelta(days=1)
    return (
        pd.Series(np.round(days.reindex(ids).to_numpy("float64")), index=ids)
        .astype("Int64")
        .rename("recency_days")
    )
