"""Acting on a customer's request to stop contact: one call withdraws every channel.

A customer who says "不要再给我发任何营销信息" has withdrawn marketing on every
channel, but consent is stored per channel and purpose: a channel left without a
``withdrawn`` row would be re-admitted by any later grant there. This writes one
``withdrawn`` row per channel (all of them by default) at the time of the request,
through the consent import (:func:`crm_ml.store.loading.import_frame`), so the
rows pass the same checks as a consent file and the change is recorded in
``load_batch``.

A withdrawal is for one purpose: lists exported for another purpose (``service``,
``research``) still include the customer until that purpose is withdrawn too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.store._timestamps import as_store_time
from crm_ml.store.admin import unknown_customers, utc_now
from crm_ml.store.connection import Store
from crm_ml.store.loading import LoadResult, import_frame
from crm_ml.store.schema import CONSENT_CHANNELS, CONSENT_PURPOSES

log = logging.getLogger(__name__)

CONSENT_COLUMNS = ("customer_id", "channel", "purpose", "updated_at", "status", "source")


@dataclass(frozen=True)
class ConsentWithdrawal:
    """What :func:`withdraw_consent` recorded.

    Attributes
    ----------
    customer_ids : tuple of str
        The customers, as given (merged-away ids count for their survivor).
    purpose : str
        The purpose withdrawn.
    channels : tuple of str
        The channels withdrawn.
    at : datetime
        When the withdrawal is recorded (naive UTC).
    load : LoadResult
        The consent import that wrote the rows.
    """

    customer_ids: tuple[str, ...]
    purpose: str
    channels: tuple[str, ...]
    at: datetime
    load: LoadResult

    def summary(self) -> str:
        """Describe the withdrawal in plain text, for the CLI and logs."""
        lines = [
            f"Recorded {self.purpose} consent withdrawn on {', '.join(self.channels)} for "
            f"{len(self.customer_ids)} customer(s) at {self.at:%Y-%m-%d %H:%M:%S} UTC: "
            f"{self.load.inserted} consent row(s) written, {self.load.unchanged} already recorded."
        ]
        others = [p for p in CONSENT_PURPOSES if p != self.purpose]
        lines.append(
            f"Lists exported for {' or '.join(others)} still include them; withdraw those "
            "purposes too if the customer asked to stop all contact. Lists already sent "
            "are not recalled (find them with `crm-ml lists find ID`)."
        )
        return "\n".join(lines)


def withdrawal_rows(
    customer_ids: Iterable[str],
    *,
    channels: Sequence[str],
    purposes: Sequence[str],
    at: datetime,
    source: str,
) -> pd.DataFrame:
    """Return one ``withdrawn`` consent row per customer, channel and purpose, dated ``at``.

    Returns
    -------
    pandas.DataFrame
        Default integer index; the ``consent`` table's columns ``customer_id``,
        ``channel``, ``purpose``, ``updated_at``, ``status`` (``withdrawn``), ``source``.
    """
    rows = [
        (customer_id, channel, purpose, at, "withdrawn", source)
        for customer_id in customer_ids
        for purpose in purposes
        for channel in channels
    ]
    return pd.DataFrame(rows, columns=list(CONSENT_COLUMNS))


def _checked_request(
    customer_ids: Iterable[str], purpose: str, channels: Sequence[str], source: str
) -> tuple[list[str], tuple[str, ...]]:
    ids = list(dict.fromkeys(str(c).strip() for c in customer_ids))
    if not ids or any(not c for c in ids):
        raise ValidationError("Give at least one customer id, and no blank ones.")
    if purpose not in CONSENT_PURPOSES:
        raise ValidationError(
            f"Unknown purpose {purpose!r}; expected one of {', '.join(CONSENT_PURPOSES)}."
        )
    unknown = [c for c in channels if c not in CONSENT_CHANNELS]
    if unknown or not channels:
        raise ValidationError(
            f"Unknown channel(s) {', '.join(map(repr, unknown)) or '(none given)'}; expected "
            f"some of {', '.join(CONSENT_CHANNELS)} (all of them by default)."
        )
    if not (source and source.strip()):
        raise ValidationError(
            "A withdrawal needs a source saying how the customer asked (e.g. 'call_center', "
            "'sms_reply'); got a blank one."
        )
    return ids, tuple(dict.fromkeys(channels))


def withdraw_consent(
    store: Store,
    customer_ids: Iterable[str],
    *,
    purpose: str,
    source: str,
    channels: Sequence[str] = CONSENT_CHANNELS,
    at: datetime | None = None,
) -> ConsentWithdrawal:
    """Record that customers withdrew ``purpose`` consent on ``channels`` (every one by default).

    Parameters
    ----------
    store : Store
        The store to write to.
    customer_ids : iterable of str
        The customers who asked (a merged-away id counts for its survivor).
    purpose : str
        One of :data:`crm_ml.store.schema.CONSENT_PURPOSES`, e.g. ``marketing``.
    source : str
        How the request came in (``consent.source``), e.g. ``call_center``.
    channels : sequence of str
        Channels withdrawn; by default all of :data:`crm_ml.store.schema.CONSENT_CHANNELS`.
    at : datetime, optional
        When the customer asked (naive means UTC); by default now.

    Returns
    -------
    ConsentWithdrawal

    Raises
    ------
    ValidationError
        For no or blank ids, an unknown purpose or channel, or a blank source.
    NotFoundError
        If an id names no customer of the store; nothing is written.
    """
    ids, chosen = _checked_request(customer_ids, purpose, channels, source)
    when = utc_now() if at is None else as_store_time(at, name="at")
    with store.connect() as conn:
        missing = unknown_customers(conn, ids)
    if missing:
        raise NotFoundError(
            f"{len(missing)} customer id(s) are not in the store: {', '.join(missing[:5])}. "
            "Check the ids (text: 000123 is not 123); nothing was written."
        )
    rows = withdrawal_rows(ids, channels=chosen, purposes=[purpose], at=when, source=source)
    # The consent import's own checks and load_batch record apply, as for a consent file;
    # the times are UTC already.
    load = import_frame(
        store, "consent", rows, source=f"consent withdrawal ({source})", timezone="UTC"
    )
    result = ConsentWithdrawal(tuple(ids), purpose, chosen, when, load)
    log.info("%s", result.summary().splitlines()[0])
    return result
