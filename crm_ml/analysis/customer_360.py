"""Customer 360: one customer's profile, history, tags, scores, owner and consent at ``as_of``.

Everything is read as it stood just before ``as_of``: orders, events, points,
tier changes, campaign contacts, owner assignments and consent decisions
dated before it; tags in force at it (``valid_from <= as_of < valid_to``, as
``customers_with_tag`` reads them, so tags applied at ``as_of`` show); the
latest score of each model computed at or before it (a score's ``as_of`` is
the cutoff of the data it used).

One person, one view, as the features, lists and analyses count them: a
surviving customer's view holds the history of every record merged into it
(chains ``A -> B -> C`` followed, whatever the merge date), including rows still
stored under a merged id (imported after the merge, or merged by a source
system); each history frame's ``record_id`` says which record a row is stored
under. Asking for a merged-away id (an old card number, say) shows the person
it was merged into, with ``requested_id`` saying so: an agent looking a
customer up wants the person, not a retired record with no current history.
Scores are the survivor's only (they were computed for the id they name).

Personal data is masked by default (``张*``, ``138****5678``,
``a***@example.com``, age instead of birth date; points notes, tier reasons
and event details only when at least :data:`MIN_SHARED_TEXT` customers share
the text, and never what customers wrote in feedback and complaints);
``unmask=True`` shows it in full and is logged. Timestamps are naive UTC in
the store; frames show them in ``tz`` (naive local wall-clock time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Connection

from crm_ml.analysis._common import Instant, as_instant, check_tz, local_instant, to_local
from crm_ml.analysis._customer_read import (
    FREE_TEXT,
    Person,
    find_person,
    read_parts,
    shared_texts,
)
from crm_ml.analysis._plot import finish
from crm_ml.analysis._read import read_tiers
from crm_ml.features.spec import VALUE_LABELS
from crm_ml.segments.masking import mask_name
from crm_ml.store.admin import check_store
from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

#: Free text of the history (event details, points notes, tier reasons) is shown in a
#: masked view only when at least this many customers' rows hold the same text: what
#: the system writes or many people type, not a note naming one person.
MIN_SHARED_TEXT = 10
#: Events whose detail a customer wrote: always hidden in a masked view.
WRITTEN_BY_CUSTOMER = ("feedback", "complaint")
_HIDDEN = {
    "written": {"zh": "（客户填写的文字，已隐藏）", "en": "(written by the customer, hidden)"},
    "rare": {
        "zh": "（少于10位客户有此文字，可能含个人信息，已隐藏）",
        "en": "(text fewer than 10 customers share, may hold personal data: hidden)",
    },
}

#: Lanes of the timeline figure, top to bottom.
TIMELINE_KINDS = ("order", "event", "points", "tier", "tag", "campaign", "owner", "consent")


@dataclass
class Customer360:
    """One customer as of a date; built by :func:`customer_360`.

    Attributes
    ----------
    customer_id : str
        The person's surviving record (the id in features, scores and lists).
    requested_id : str
        The id asked for: ``customer_id``, or a record merged into it.
    as_of : pandas.Timestamp
        Naive UTC.
    masked : bool
        Whether personal data is masked.
    profile : pandas.DataFrame
        Indexed by ``field``; column ``value`` (text): identity (with
        ``requested_id``, e.g. ``m2 (merged into c1)`` when a merged-away id was
        asked for, else blank, and ``merged_records``), profile, current tier,
        owner, points balance and purchase summary, over all the person's records.
    identities : pandas.DataFrame
        ``kind, value, verified, record_id`` (values masked unless unmasked).
    orders : pandas.DataFrame
        ``order_id, ordered_at, channel, store_id, gross_amount,
        discount_amount, net_amount, items, refund_amount`` (refunds made before
        ``as_of``), ``record_id``.
    events : pandas.DataFrame
        ``occurred_at, event_type, channel, touchpoint, product_id, detail, record_id``.
    points : pandas.DataFrame
        ``posted_at, kind, points, balance`` (running, over all the records),
        ``expires_at, note, record_id``.
    tiers : pandas.DataFrame
        ``changed_at, from_tier, to_tier, direction, reason, record_id``; tiers
        named as the report tables name them in the view's language (see
        :func:`customer_360`).
    tags : pandas.DataFrame
        ``tag, label, category, source, valid_from, valid_to, active, record_id``; every
        membership that began at or before ``as_of``, those in force at it first
        (``valid_to`` is NaT for a membership still open at ``as_of``).
    scores : pandas.DataFrame
        Indexed by ``model_name``: ``model_version, score_as_of, probability,
        band, reasons`` (the reasons' texts joined by ``; ``).
    reasons : pandas.DataFrame
        ``model_name, rank, text, actionable, contribution``.
    owners : pandas.DataFrame
        ``owner_id, owner_name, valid_from, valid_to, current, record_id``;
        ``current`` marks the latest started assignment still in force.
    consent : pandas.DataFrame
        Indexed by ``channel``, one column per purpose: ``granted``,
        ``withdrawn`` or ``unknown`` (no decision: no consent).
    campaigns : pandas.DataFrame
        ``campaign_id, name, channel, group, contacted_at, responded, record_id``.
    timeline : pandas.DataFrame
        ``at, kind`` (one of :data:`TIMELINE_KINDS`), ``what``, ``amount``; sorted by ``at``.
        Everything is before ``as_of`` except tag changes made at it.
    figure : matplotlib.figure.Figure
        The timeline (see :func:`plot_customer_timeline`).
    """

    customer_id: str
    requested_id: str
    as_of: pd.Timestamp
    masked: bool
    profile: pd.DataFrame
    identities: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame
    points: pd.DataFrame
    tiers: pd.DataFrame
    tags: pd.DataFrame
    scores: pd.DataFrame
    reasons: pd.DataFrame
    owners: pd.DataFrame
    consent: pd.DataFrame
    campaigns: pd.DataFrame
    timeline: pd.DataFrame
    figure: Figure


def _age(birth: Any, on: pd.Timestamp) -> str:
    if birth is None or pd.isna(birth):
        return ""
    born = pd.Timestamp(birth)
    return str(on.year - born.year - ((on.month, on.day) < (born.month, born.day)))


def _text(value: Any, tz: str) -> str:
    """Show a profile value as text; instants (naive UTC) in local time ``tz``."""
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return ""
    if isinstance(value, datetime | np.datetime64):
        return f"{local_instant(pd.Timestamp(value), tz):%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def _purchase_summary(orders: pd.DataFrame, on: pd.Timestamp) -> dict[str, Any]:
    revenue = (orders["net_amount"] - orders["refund_amount"]).clip(lower=0.0)
    last = orders["ordered_at"].max() if len(orders) else None
    return {
        "orders": len(orders),
        "revenue": float(revenue.sum()),
        "avg_order_value": float(revenue.mean()) if len(orders) else None,
        "first_order_at": orders["ordered_at"].min() if len(orders) else None,
        "last_order_at": last,
        # Rounded as the features and the reasons round it (152.6 days reads 153 in both).
        "recency_days": round((on - last) / pd.Timedelta(days=1)) if last is not None else None,
    }


def _requested(person: Person) -> str:
    """Say which id was asked for when it is not the person's own (blank otherwise)."""
    if person.requested_id == person.customer_id:
        return ""
    return f"{person.requested_id} (merged into {person.customer_id})"


def _shown(column: str, code: Any, lang: str) -> Any:
    """Show a stored profile code in ``lang``: ``female`` as 女, ``mini_program`` as 小程序."""
    labels = VALUE_LABELS[column].get(str(code)) if code is not None else None
    return labels[1] if labels and lang == "zh" else code


def _profile(
    person: Person, parts: dict[str, Any], on: pd.Timestamp, *, unmask: bool, tz: str, lang: str
) -> pd.DataFrame:
    """One text value per field: who the person is and where they stand at ``on``."""
    row, ident = person.row, parts["identities"]
    first = ident.drop_duplicates("kind").set_index("kind")["value"]
    tiers, owners = parts["tiers"], parts["owners"]
    current = owners[owners["current"]]
    fields: dict[str, Any] = {
        "customer_id": row.customer_id,
        "requested_id": _requested(person),
        "name": row.name if unmask else mask_name(row.name),
        "gender": _shown("gender", row.gender, lang),
        **(
            {"birth_date": f"{row.birth_date:%Y-%m-%d}" if row.birth_date else None}
            if unmask
            else {"age": _age(row.birth_date, on)}
        ),
        "city": row.city,
        "city_tier": row.city_tier,
        "acquisition_channel": _shown("acquisition_channel", row.acquisition_channel, lang),
        "is_member": row.is_member,
        "member_since": row.member_since,
        "created_at": person.created_at,  # the earliest record's, as in the features
        "status": row.status,
        # The blanks below are not missing data: the person asked to be forgotten.
        "erased_on_request": parts["erased_at"],
        "merged_into": row.merged_into,
        "merged_records": parts["merged"],
        **{kind: first.get(kind) for kind in ("phone", "email", "wechat", "member_card")},
        "tier": tiers["to_tier"].iloc[-1] if len(tiers) else "",
        "owner": " ".join(current[["owner_id", "owner_name"]].iloc[0].dropna().astype(str))
        if len(current)
        else "",
        "points_balance": int(parts["points"]["points"].sum()),
        **_purchase_summary(parts["orders"], on),
    }
    values = [_text(v, tz) for v in fields.values()]
    return pd.DataFrame({"value": values}, index=pd.Index(list(fields), name="field"))


def _hide_personal_text(conn: Connection, parts: dict[str, Any], lang: str) -> None:
    """Hide the history's free text that could be about this person alone.

    Names and addresses cannot be found in text, so a masked view shows a text
    only when :data:`MIN_SHARED_TEXT` customers share it, and never what the
    customer wrote in feedback and complaints.
    """
    language = "zh" if lang == "zh" else "en"
    for part, column in FREE_TEXT.items():
        text = parts[part][column.key]
        shared = shared_texts(conn, part, text.dropna(), MIN_SHARED_TEXT)
        rare = text.notna() & ~text.isin(shared)
        parts[part].loc[rare, column.key] = _HIDDEN["rare"][language]
    events = parts["events"]
    written = events["event_type"].isin(WRITTEN_BY_CUSTOMER) & events["detail"].notna()
    events.loc[written, "detail"] = _HIDDEN["written"][language]


def _named_tiers(tiers: pd.DataFrame, table: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Name the tier changes' tiers as the report tables do in ``lang``.

    ``tiers`` names them by the tier table's ``name``; in ``zh`` the reports show
    the ``label`` (``read_tiers`` gives the name where a tier has none).
    """
    if lang != "zh":
        return tiers
    labels = dict(zip(table["name"], table["label"], strict=True))
    return tiers.assign(
        **{col: tiers[col].map(lambda t: labels.get(t, t)) for col in ("from_tier", "to_tier")}
    )


def _timeline(parts: dict[str, pd.DataFrame], on: pd.Timestamp) -> pd.DataFrame:
    """Every dated item of the history in one frame: ``at, kind, what, amount``."""
    o, e, p, t = parts["orders"], parts["events"], parts["points"], parts["tiers"]
    g, c, w = parts["tags"], parts["campaigns"], parts["owners"]
    closed = g[g["valid_to"].notna()]

    def text(series: pd.Series) -> pd.Series:
        return series.astype("str")

    pieces = [
        (o["ordered_at"], "order", text(o["channel"]) + " " + text(o["order_id"]), o["net_amount"]),
        (e["occurred_at"], "event", e["event_type"], None),
        (p["posted_at"], "points", p["kind"], p["points"]),
        (t["changed_at"], "tier", text(t["from_tier"]) + " → " + text(t["to_tier"]), None),
        (g["valid_from"], "tag", "+ " + text(g["tag"]), None),
        (closed["valid_to"], "tag", "− " + text(closed["tag"]), None),
        (c["contacted_at"], "campaign", text(c["name"].fillna(c["campaign_id"])), None),
        (w["valid_from"], "owner", w["owner_name"].fillna(w["owner_id"]), None),
        (parts["consent_rows"]["updated_at"], "consent", parts["consent_rows"]["what"], None),
    ]
    frames = [
        pd.DataFrame({"at": at.to_numpy(), "kind": kind, "what": what.astype("str").to_numpy(),
                      "amount": np.nan if amount is None else amount.astype("float64").to_numpy()})
        for at, kind, what, amount in pieces
        if len(at)
    ]  # fmt: skip
    columns = {"at": "datetime64[us]", "kind": "str", "what": "str", "amount": "float64"}
    if not frames:
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in columns.items()})
    timeline = pd.concat(frames, ignore_index=True).astype(columns)
    # Other parts are read before as_of; tags applied or ended at as_of belong on it too.
    return timeline[timeline["at"] <= on].sort_values("at", kind="stable", ignore_index=True)


def _localise(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Show every datetime column of ``frame`` in local wall-clock time."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_dtype(frame[column]):
            frame[column] = to_local(frame[column], tz)
    return frame.reset_index(drop=True)


def customer_360(
    store: Store,
    customer_id: str,
    as_of: Instant,
    *,
    unmask: bool = False,
    tz: str = "UTC",
    lang: str = "en",
) -> Customer360:
    """Gather one customer's profile, history, tags, scores, owner and consent at ``as_of``.

    Parameters
    ----------
    store : Store
        The customer/loyalty store.
    customer_id : str
        The customer (text: ``000123`` is not ``123``); a merged-away id shows
        the person it was merged into.
    as_of : datetime or str
        Only what happened before it is shown (see the module notes).
    unmask : bool
        Show names, phones, emails, other identifiers and the birth date in full
        (logged). By default they are masked and the age is shown instead.
    tz : str
        IANA time zone the frames' timestamps are shown in (e.g. ``"Asia/Shanghai"``).
    lang : str
        ``"en"`` or ``"zh"`` (e.g. ``settings.language``): the timeline figure's
        labels, and how tiers are named. In ``"zh"`` a tier is its display label
        from the tier table (``钻石会员``, its name where it has none), as the
        report tables show it with ``labels="label"``; in ``"en"`` its name
        (``diamond``).

    Returns
    -------
    Customer360
        Frames described on the class, and the timeline figure. For a
        merged-away ``customer_id``, the person it was merged into (see the
        module notes): ``customer_id`` is the survivor's, ``requested_id`` the id given.

    Raises
    ------
    NotFoundError
        If the customer does not exist, or was created on or after ``as_of``
        (a person: their earliest record).
    """
    on = as_instant(as_of)
    check_tz(tz)
    with store.connect() as conn:
        check_store(conn)
        person = find_person(conn, str(customer_id), on)
        parts = read_parts(conn, person, on, unmask)
        if not unmask:
            _hide_personal_text(conn, parts, lang)
    parts["tiers"] = _named_tiers(parts["tiers"], read_tiers(store), lang)
    cid = person.customer_id
    if person.requested_id != cid:
        log.info("Customer %s was merged into %s: showing %s", person.requested_id, cid, cid)
    if unmask:
        log.warning("Customer 360 of %s shown UNMASKED (full personal data)", cid)
    profile = _profile(person, parts, on, unmask=unmask, tz=tz, lang=lang)
    timeline = _localise(_timeline(parts, on), tz)
    local = {
        name: _localise(parts[name], tz)
        for name in ("orders", "events", "points", "tiers", "tags", "owners", "campaigns")
    }
    name = str(profile.at["name", "value"])
    title = f"{cid} {name}, as of {on:%Y-%m-%d}".replace("  ", " ")
    return Customer360(
        customer_id=cid,
        requested_id=person.requested_id,
        as_of=on,
        masked=not unmask,
        profile=profile,
        identities=parts["identities"],
        scores=parts["scores"],
        reasons=parts["reasons"],
        consent=parts["consent"],
        timeline=timeline,
        figure=plot_customer_timeline(
            timeline, title=title, lang=lang, until=local_instant(on, tz)
        ),
        **local,
    )


_LABELS = {
    "en": {"spend": "Cumulative spend", "points": "Points balance", "empty": "No history"},
    "zh": {"spend": "累计消费", "points": "积分余额", "empty": "暂无记录"},
}


def _draw_lanes(ax: Any, timeline: pd.DataFrame) -> None:
    kinds = [k for k in TIMELINE_KINDS if k in set(timeline["kind"])]
    largest = timeline.loc[timeline["kind"] == "order", "amount"].abs().max()
    for y, kind in enumerate(kinds):
        part = timeline[timeline["kind"] == kind]
        sizes: Any = 25
        if kind == "order" and largest and largest > 0:
            sizes = (20 + 120 * part["amount"].abs() / largest).to_numpy()
        ax.scatter(part["at"], np.full(len(part), y), s=sizes, color=f"C{y}", alpha=0.7)
        if kind == "tier":
            for at, what in zip(part["at"], part["what"], strict=True):
                ax.annotate(what, (at, y), xytext=(2, 6), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_ylim(len(kinds) - 0.5, -0.7)
    ax.grid(axis="x", alpha=0.3)


def _draw_totals(ax: Any, timeline: pd.DataFrame, lang: str) -> None:
    orders = timeline[timeline["kind"] == "order"]
    points = timeline[timeline["kind"] == "points"]
    ax.step(orders["at"], orders["amount"].cumsum(), where="post", color="C0", lw=2.5)
    ax.set_ylabel(_LABELS[lang]["spend"], color="C0")
    ax.yaxis.set_major_formatter("{x:,.0f}")
    if points.empty:  # an empty axis would show a meaningless ±0.04 scale
        return
    twin = ax.twinx()
    twin.step(points["at"], points["amount"].cumsum(), where="post", color="C2", ls="--")
    twin.set_ylabel(_LABELS[lang]["points"], color="C2")


def _extend_to(ax: Any, first: pd.Timestamp, last: pd.Timestamp) -> None:
    """Show ``first`` to ``last`` on the time axis, with a little room for the markers."""
    pad = max((last - first) * 0.02, pd.Timedelta(days=1))
    ax.set_xlim(first - pad, last + pad)


def plot_customer_timeline(
    timeline: pd.DataFrame, *, title: str = "", lang: str = "en", until: Any = None
) -> Figure:
    """Draw a customer's timeline: one lane per kind of item, then spend and points over time.

    Parameters
    ----------
    timeline : pandas.DataFrame
        :attr:`Customer360.timeline` (``at, kind, what, amount``). Orders are
        sized by amount; tier changes are labelled.
    title : str
        Figure title.
    lang : str
        ``"en"`` or ``"zh"`` axis labels.
    until : datetime-like, optional
        Extend the time axis to this instant (``as_of``, in the timeline's
        time zone), so a long silence before it shows.
    """
    fig = Figure(figsize=(10.0, 5.5), layout="constrained")
    if lang not in _LABELS:
        lang = "en"
    if timeline.empty:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, _LABELS[lang]["empty"], ha="center", va="center")
        ax.set_axis_off()
    else:
        lanes, totals = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        _draw_lanes(lanes, timeline)
        _draw_totals(totals, timeline, lang)
        if until is not None:
            _extend_to(totals, timeline["at"].min(), max(pd.Timestamp(until), timeline["at"].max()))
        fig.autofmt_xdate()
    fig.suptitle(title)
    # Names, tiers and campaigns are often Chinese: draw them with a CJK font.
    texts = [title, *timeline["what"].astype("str")]
    return finish(fig, "zh" if lang == "zh" or not all(t.isascii() for t in texts) else "en")
