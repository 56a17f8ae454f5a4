"""Exporting a segment as contact lists: consent-filtered, masked, routed, audited.

:func:`export_list` keeps only customers whose consent for the channel and
purpose was granted before ``as_of`` and not withdrawn since (withdrawn and unknown
are counted, never written), masks names, phones and emails unless ``unmask=True`` (which is
logged and recorded), adds a keyed pseudonymous id, writes one file per
account manager (the one in charge when the list is sent) plus one for
unowned customers (UTF-8 with BOM, formula cells neutralised, headers in the
list's language, written atomically, replacing an earlier export's set of the
same segment, date, channel and purpose as a whole), and records every file in
``export_log``. What becomes of the files afterwards (moved, discarded,
replaced) is recorded in the same rows by :mod:`crm_ml.segments.export_log`.

Every list gives its caller something to say and to sort by: the 12-month
revenue and the days since the last purchase, plus the churn columns (value at
risk, reasons, suggested action) whenever the churn model has scores at the
list's date; rows are ranked by value at risk, then revenue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy import Connection, Table, delete, select, update

from crm_ml.analysis.risk import revenue_12m
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.outputs import check_output_folder, remove_old_leftovers, set_aside, staged_file
from crm_ml.rules import as_timestamp
from crm_ml.segments.definitions import Segment, check_segment_rule, load_segment
from crm_ml.segments.export_log import IN_PLACE, mark_rows, replaced_status
from crm_ml.segments.headers import PURPOSE_LABELS, list_headers, localise_columns
from crm_ml.segments.lists import (
    CONTACT_COLUMNS,
    FOLLOW_UP_P_CHURN,
    FOLLOW_UP_SHARE,
    MARKETING,
    ChurnRisk,
    check_channel,
    churn_details,
    churn_risk_at,
    consent_for,
    contact_details,
    owners_when_sent,
    recency_days,
)
from crm_ml.segments.masking import (
    mask_email,
    mask_name,
    mask_phone,
    pseudonymous_id,
    require_secret,
)
from crm_ml.segments.members import segment_members, snapshot_rule_version, snapshot_segment
from crm_ml.store.admin import utc_now
from crm_ml.store.connection import Store
from crm_ml.store.schema import EXPORT_WRITING, EXPORT_WRITTEN, ExportLog
from crm_ml.tags.files import safe_file_part, write_excel_csv

log = logging.getLogger(__name__)
#: List columns whose cells of digits Excel must keep as text (no lost zeros, no 1.38E+10).
TEXT_COLUMNS = ("phone", "customer_id", "owner_id")

_LOG_TABLE = cast(Table, ExportLog.__table__)
UNOWNED = "unowned"
_E164 = re.compile(r"\+([1-9][0-9]{6,14})")
_CN_MOBILE = re.compile(r"861[3-9][0-9]{9}")

#: Money columns: written with two decimals (``12022.00``, never ``12022.0``), as the
#: retention report shows them, so a column reads alike from row to row.
MONEY_COLUMNS = ("revenue_12m", "value_at_risk")


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_list` wrote.

    Attributes
    ----------
    segment : str
    rule_version : int
    as_of : datetime
    kept : int
        Customers written (consent granted).
    excluded_withdrawn, excluded_unknown : int
        Members left out for withdrawn or unknown consent.
    unmasked : bool
    files : pandas.DataFrame
        One row per file: ``owner_id, owner_name, path, kept, excluded, export_id``.
    snapshot_note : str
        ``""`` when the stored snapshot of the current rule was used; otherwise
        why a snapshot was taken first (none yet, or one of an older rule version).
    follow_up_from : float or None
        The value at risk from which a customer with ``p_churn`` at or above
        :data:`~crm_ml.segments.lists.FOLLOW_UP_P_CHURN` is followed up one to
        one: the top :data:`~crm_ml.segments.lists.FOLLOW_UP_SHARE` of every
        customer scored at ``as_of``, the same on every list of that date
        (:class:`~crm_ml.segments.lists.ChurnRisk`). None when the list
        suggests no churn-based action (no churn columns, or a purpose other
        than marketing).
    scored_customers : int
        How many customers that share was taken of.
    """

    segment: str
    rule_version: int
    as_of: datetime
    kept: int
    excluded_withdrawn: int
    excluded_unknown: int
    unmasked: bool
    files: pd.DataFrame
    snapshot_note: str = ""
    follow_up_from: float | None = None
    scored_customers: int = 0

    def __str__(self) -> str:
        text = f"Exported {self.segment} v{self.rule_version} as of {self.as_of:%Y-%m-%d}: "
        text += self._counts() + (" — UNMASKED" if self.unmasked else "")
        notes = [n for n in (self._follow_up(), self.snapshot_note) if n]
        return ". ".join([text, *notes])

    def _follow_up(self) -> str:
        """Say from which value at risk customers are followed up one to one, if the list does."""
        if self.follow_up_from is None or not self.kept:
            return ""
        return (
            f"One-to-one follow-up for p_churn >= {FOLLOW_UP_P_CHURN} and value at risk >= "
            f"{self.follow_up_from:,.2f} (the top {FOLLOW_UP_SHARE:.0%} of the "
            f"{self.scored_customers:,} customers scored; the same on every list of this date)"
        )

    def _counts(self) -> str:
        withdrawn, unknown, files = self.excluded_withdrawn, self.excluded_unknown, len(self.files)
        if self.kept:
            return (
                f"{self.kept} kept, {withdrawn} excluded (withdrawn), "
                f"{unknown} excluded (no consent), {files} file(s)"
            )
        # Nobody to contact: say so plainly, since the header-only files look like a list.
        excluded = withdrawn + unknown
        why = (
            f"all {excluded} members excluded ({withdrawn} withdrawn, {unknown} no consent)"
            if excluded
            else "the segment has no members"
        )
        return f"0 customers to contact, {why}; {files} file(s) with a header only"


def _members(
    store: Store, seg: Segment, on: datetime, features: pd.DataFrame | None
) -> tuple[pd.Index, str]:
    """Return the members the segment's current rule gave at ``on``, and what was done to get them.

    A snapshot taken with an older version of the rule is never used: its
    members were chosen by a rule that no longer holds. Like a missing one, it
    is taken again from ``features``.
    """
    taken_with = snapshot_rule_version(store, seg.name, on)
    if taken_with == seg.version:
        return segment_members(store, seg.name, on), ""
    if features is None and taken_with is None:
        segment_members(store, seg.name, on)  # raises: no snapshot, and how to take one
    if features is None:
        raise NotFoundError(
            f"The snapshot of {seg.name} at {on:%Y-%m-%d} was taken with rule v{taken_with}, "
            f"but the segment is now v{seg.version} ({seg.rule}). Pass features= as of that "
            f"date to take a new one, or run `crm-ml segment show {seg.name} --as-of "
            f"{on:%Y-%m-%d}`."
        )
    members = snapshot_segment(store, seg, features, on)
    before = (
        f"No snapshot of {seg.name} at {on:%Y-%m-%d} yet"
        if taken_with is None
        else f"The snapshot of {seg.name} at {on:%Y-%m-%d} used rule v{taken_with}"
    )
    return members, f"{before}: took one with rule v{seg.version} ({len(members)} members)."


def _is_churn_list(store: Store, seg: Segment) -> bool:
    rule = check_segment_rule(store, seg)
    return "p_churn" in rule.fields or any(t.startswith("churn_risk") for t in rule.tags)


def dialled_phone(phone: str) -> str:
    """Return a stored phone as a dialer in mainland China dials it.

    ``+8613812345678`` -> ``13812345678`` (a mainland mobile: its 11 national
    digits); ``+447911123456`` -> ``00447911123456`` (the international prefix
    dialled from China). A value not in the store's E.164 form is returned as
    it is (and the list's formula guard treats it as any other text).
    """
    match = _E164.fullmatch(phone)
    if match is None:
        return phone
    digits = match.group(1)
    return digits[2:] if _CN_MOBILE.fullmatch(digits) else f"00{digits}"


def _personal_columns(
    details: pd.DataFrame, key: bytes, unmask: bool, channel: str
) -> pd.DataFrame:
    """Return the pseudonymous id, the name and the contact details ``channel`` needs."""
    frame = pd.DataFrame(index=details.index)
    frame["pseudo_id"] = [pseudonymous_id(c, key) for c in details.index]
    if unmask:
        frame["customer_id"] = details.index
    maskers = {"name": mask_name, "phone": mask_phone, "email": mask_email}
    for column in ("name", *CONTACT_COLUMNS[channel]):
        values = [v if isinstance(v, str) else "" for v in details[column].tolist()]
        frame[column] = values if unmask else [maskers[column](v) for v in values]
    if unmask and "phone" in frame:
        # What staff paste into a dialer: digits only, so no formula guard (and no visible ').
        frame["phone"] = [dialled_phone(v) for v in frame["phone"]]
    return frame


def _build(
    store: Store,
    members: pd.Index,
    on: datetime,
    *,
    channel: str,
    purpose: str,
    key: bytes,
    unmask: bool,
    churn: bool | None,
    features: pd.DataFrame | None,
    language: str,
) -> tuple[pd.DataFrame, pd.DataFrame, ChurnRisk | None]:
    """Return (the kept rows, every member's consent and owner, the churn risk the rows show).

    Owners are those a list of ``on`` is sent to (:func:`owners_when_sent`):
    like consent, routing follows the list being sent now. Every row says the
    purpose the list was cleared for, in ``language``. The churn risk is None
    when the rows have no churn columns (see :func:`_caller_columns`).
    """
    with store.connect() as conn:
        status = _sendable_consent(conn, members, channel, purpose, on)
        owners = owners_when_sent(conn, members, on)
        kept = pd.Index(members[(status == "granted").to_numpy()], name="customer_id")
        rows = _personal_columns(contact_details(conn, kept), key, unmask, channel)
        rows.insert(0, "purpose", PURPOSE_LABELS[language][purpose])
        rows = rows.join(owners.reindex(kept))
        context, risk = _caller_columns(
            conn, kept, on, churn=churn, features=features, channel=channel,
            purpose=purpose, language=language, owners=rows["owner_id"],
        )  # fmt: skip
    return _ranked(rows.join(context)), owners.assign(consent=status), risk


def _caller_columns(
    conn: Connection,
    ids: pd.Index,
    on: datetime,
    *,
    churn: bool | None,
    features: pd.DataFrame | None,
    channel: str,
    purpose: str,
    language: str,
    owners: pd.Series,
) -> tuple[pd.DataFrame, ChurnRisk | None]:
    """Return what a caller says and sorts by, and the churn risk if its columns are there.

    Every list gets ``revenue_12m`` and ``recency_days``; the churn columns of
    :func:`~crm_ml.segments.lists.churn_details` come before ``recency_days``
    when ``churn`` is true, or is None and the churn model has scores at ``on``
    (an audience that does not select by churn still gets its callers' most
    urgent customers first). The other arguments are ``churn_details``'.
    """
    risk = None if churn is False else churn_risk_at(conn, on)
    if risk is not None and (churn or not risk.scores.empty):
        columns = churn_details(
            conn, ids, on, features, channel=channel, purpose=purpose, language=language,
            owners=owners, risk=risk,
        )  # fmt: skip
    else:
        revenue = revenue_12m(conn, on) if risk is None else risk.revenue_12m
        columns = pd.DataFrame({"revenue_12m": revenue.reindex(ids).fillna(0.0)}, index=ids)
        risk = None
    return columns.assign(recency_days=recency_days(conn, ids, on)), risk


def _ranked(rows: pd.DataFrame) -> pd.DataFrame:
    """Sort rows as a caller works through them: most value at risk, then most revenue, first.

    Rows without a value at risk (no score) come after those with one; the
    pseudonymous id breaks ties, so every run gives one order.
    """
    keys = [c for c in ("value_at_risk", "revenue_12m") if c in rows.columns]
    return rows.sort_values(
        [*keys, "pseudo_id"], ascending=[*(False for _ in keys), True], na_position="last"
    )


def _sendable_consent(
    conn: Connection, members: pd.Index, channel: str, purpose: str, on: datetime
) -> pd.Series:
    """Return each member's consent: granted before ``on`` and not taken back since.

    A list is sent now, possibly re-run for an earlier date: a withdrawal made
    at or after ``on`` must still keep the customer off it (counted as
    withdrawn). A grant made at or after ``on`` does not add anyone to a list of
    that date: as in the features, a decision at ``on`` itself is not yet in
    force at ``on`` (see :func:`crm_ml.rules.consent_status_at`).
    """
    at = consent_for(conn, members, channel, purpose, on)
    latest = consent_for(conn, members, channel, purpose, None)
    return at.where((at != "granted") | (latest == "granted"), latest)


def _split_files(
    rows: pd.DataFrame, audit: pd.DataFrame, out_dir: Path, stem: str, language: str
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """Return what each file holds, one per owner and one for the unowned, and its table.

    Rows are routed by their code column names; only the table's header is in
    ``language``, for the agent who opens the file.
    """
    owner_ids = sorted({str(o) for o in rows["owner_id"].dropna()})
    written, tables = [], []
    for owner in [*owner_ids, None]:
        mine = rows[rows["owner_id"].isna()] if owner is None else rows[rows["owner_id"] == owner]
        theirs = (
            audit[audit["owner_id"].isna()] if owner is None else audit[audit["owner_id"] == owner]
        )
        part = UNOWNED if owner is None else f"owner-{safe_file_part(owner)}"
        tables.append(localise_columns(_as_written(mine.reset_index(drop=True)), language))
        names = mine["owner_name"].dropna()
        written.append(
            {
                "owner_id": owner,
                "owner_name": names.iloc[0] if len(names) else None,
                "path": out_dir / f"{stem}_{part}.csv",
                "kept": len(mine),
                "excluded": int((theirs["consent"] != "granted").sum()),
            }
        )
    return written, tables


def _as_written(rows: pd.DataFrame) -> pd.DataFrame:
    """Return ``rows`` with money as text with two decimals (:data:`MONEY_COLUMNS`)."""
    money = {
        column: rows[column].map(lambda v: "" if pd.isna(v) else f"{v:.2f}").astype("str")
        for column in MONEY_COLUMNS
        if column in rows.columns
    }
    return rows.assign(**money)


def _file_stem(segment: str, on: datetime, channel: str, purpose: str) -> str:
    """Return the start of a list's file names: ``<segment>_<yyyymmdd>_<channel>[_<purpose>]``.

    A purpose other than marketing is in the name, so that whoever holds a
    file sees what it was cleared for and its set never takes the marketing
    set's place; marketing lists keep the names they had before.
    """
    stem = f"{segment}_{on:%Y%m%d}_{channel}"
    return stem if purpose == MARKETING else f"{stem}_{purpose}"


def _is_one_of(path: Path, folder: Path, stem: str) -> bool:
    """Tell whether ``path`` is ``<stem>_owner-….csv`` or ``<stem>_unowned.csv`` in ``folder``."""
    name = path.name
    of_set = name == f"{stem}_{UNOWNED}.csv" or (
        name.startswith(f"{stem}_owner-") and name.endswith(".csv")
    )
    return of_set and os.path.abspath(path.parent) == os.path.abspath(folder)


def _earlier_set(
    conn: Connection,
    seg: Segment,
    on: datetime,
    channel: str,
    purpose: str,
    folder: Path,
    stem: str,
    paths: set[str],
) -> list[tuple[str, str]]:
    """``(export_id, path)`` of the files this export replaces in ``folder``.

    Those an earlier export of this list wrote (the same segment, date, channel
    and purpose), named from ``stem`` or as lists were named before purposes
    were in their names; and any other list's file at one of ``paths``
    (absolute), which this export overwrites. Only rows whose file is still in
    place count.
    """
    rows = conn.execute(
        select(_LOG_TABLE.c.export_id, _LOG_TABLE.c.path, _LOG_TABLE.c.purpose).where(
            (_LOG_TABLE.c.segment_id == seg.name)
            & (_LOG_TABLE.c.as_of == on)
            & (_LOG_TABLE.c.channel == channel)
            & (_LOG_TABLE.c.status.in_(IN_PLACE))
        )
    ).all()
    stems = (stem, _file_stem(seg.name, on, channel, MARKETING))
    return [
        (str(export_id), str(path))
        for export_id, path, logged_for in rows
        if os.path.abspath(path) in paths
        or (logged_for == purpose and any(_is_one_of(Path(path), folder, s) for s in stems))
    ]


def _replace_files(
    files: list[tuple[Path, pd.DataFrame]],
    stale: list[Path],
    *,
    text_columns: tuple[str, ...],
    private: bool = False,
) -> None:
    """Write each table to its path and remove ``stale``: all of it, or nothing.

    Every file is staged complete beside its path before any replaces an earlier
    one, and the stale files are only removed once all are in place: when a
    file cannot be written, the folder holds the earlier files as they were.
    ``private`` files (unmasked lists) are readable by their owner only (0600).
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(set_aside(stale, what="the list"))  # entered first, so it exits last
        for path, table in files:
            staged = stack.enter_context(staged_file(path, what="the list", private=private))
            write_excel_csv(table, staged, text_columns=text_columns)


def _record(
    conn: Connection,
    written: list[dict[str, Any]],
    *,
    seg: Segment,
    on: datetime,
    now: datetime,
    actor: str,
    channel: str,
    purpose: str,
    unmask: bool,
    unmask_reason: str | None,
) -> None:
    for item in written:
        item["export_id"] = uuid.uuid4().hex
        conn.execute(
            _LOG_TABLE.insert().values(
                export_id=item["export_id"],
                exported_at=now,
                actor=actor,
                segment_id=seg.name,
                rule_version=seg.version,
                as_of=on,
                channel=channel,
                purpose=purpose,
                rows_kept=item["kept"],
                rows_excluded=item["excluded"],
                unmasked=unmask,
                path=str(item["path"]),
                status=EXPORT_WRITING,
                reason=unmask_reason,
            )
        )


def _write_and_log(
    store: Store,
    written: list[dict[str, Any]],
    tables: list[pd.DataFrame],
    *,
    folder: Path,
    stem: str,
    language: str,
    **logged: Any,
) -> None:
    """Write the list's files in place of an earlier export's set, and log both.

    A re-export of the same segment, date, channel and purpose into ``folder`` replaces
    the earlier set of files as a whole: files of it that this export does not
    rewrite (an owner who has no customers on the list any more) are removed,
    and the earlier rows are marked replaced, as a report re-run marks them.

    In three steps, so the log never says less than the folder holds: the rows
    are committed first as ``writing`` (who exported what, unmasked or not, and
    why), then the files are put in place, then the rows are confirmed
    ``written`` and the earlier ones marked replaced. If a file cannot be
    written, the folder is as it was and the rows are deleted again; if the
    process is killed in between, the ``writing`` rows stay and say so. Hidden
    files that an interrupted export left in ``folder`` an hour or more ago are
    deleted first.
    """
    now = utc_now()
    paths = {os.path.abspath(item["path"]) for item in written}
    for left in remove_old_leftovers(folder, suffix=".csv"):
        log.warning("Deleted %s, left by a list writer that was interrupted", left)
    with store.begin() as conn:
        earlier = _earlier_set(
            conn, logged["seg"], logged["on"], logged["channel"], logged["purpose"], folder,
            stem, paths,
        )  # fmt: skip
        _record(conn, written, now=now, **logged)
    ids = [item["export_id"] for item in written]
    stale = [Path(p) for _, p in earlier if os.path.abspath(p) not in paths]
    files = [(item["path"], table) for item, table in zip(written, tables, strict=True)]
    try:
        _replace_files(
            files,
            stale,
            # Ids of digits keep their leading zeros in Excel, as phones do.
            text_columns=tuple(list_headers(language)[c] for c in TEXT_COLUMNS),
            private=logged["unmask"],
        )
    except BaseException:
        with store.begin() as conn:
            conn.execute(delete(_LOG_TABLE).where(_LOG_TABLE.c.export_id.in_(ids)))
        raise
    with store.begin() as conn:
        mark_rows(conn, earlier, replaced_status(now))
        _confirm(conn, ids)


def _confirm(conn: Connection, export_ids: list[str]) -> None:
    """Mark this export's rows ``written``: all its files are in place."""
    rows = _LOG_TABLE.c.export_id.in_(export_ids) & (_LOG_TABLE.c.status == EXPORT_WRITING)
    conn.execute(update(_LOG_TABLE).where(rows).values(status=EXPORT_WRITTEN))


def check_unmask_reason(unmask: bool, reason: str | None) -> str | None:
    """Return the reason to record for an unmasked export; refuse a missing or stray one."""
    reason = reason.strip() if reason else None
    if unmask and not reason:
        raise ValidationError(
            "An unmasked export (full names, phones, emails, customer ids) needs a reason for "
            "the export log; pass unmask_reason= (`--reason` on the command line), e.g. "
            "'call-back campaign approved by <manager>, ticket 1234'."
        )
    if reason and not unmask:
        raise ValidationError(
            f"A reason was given ({reason!r}) for a masked export; it is recorded only for "
            "unmasked ones. Add unmask=True (`--unmask`) or leave the reason out."
        )
    return reason


def export_list(
    store: Store,
    segment: str,
    as_of: Any,
    *,
    channel: str,
    purpose: str,
    out_dir: Path,
    secret: str | bytes | None,
    actor: str,
    unmask: bool = False,
    unmask_reason: str | None = None,
    features: pd.DataFrame | None = None,
    churn: bool | None = None,
    language: str = "zh",
) -> ExportSummary:
    """Export a segment's members who consented, one CSV per account manager.

    Parameters
    ----------
    store : Store
    segment : str
        A stored segment. Its snapshot at ``as_of`` is used if it was taken
        with the segment's current rule version. When there is none, or one of
        an older version, and ``features`` is given, the snapshot is taken
        (again) first and the summary's ``snapshot_note`` says so.
    as_of : datetime-like
        The list's date: its snapshot and scores are those of this date. The
        list is sent now, so consent withdrawn since still keeps a customer off
        it, and customers are routed to their account manager now (at
        ``as_of`` if that is later), see :func:`~crm_ml.segments.lists.owners_when_sent`.
    channel, purpose : str
        Consent must be ``granted`` for this channel and purpose by a decision
        made before ``as_of``, and not withdrawn since. The list carries the
        contact details of this channel only, its suggested actions reach
        customers by it, and a list for another purpose than ``marketing``
        suggests no offer (:func:`~crm_ml.segments.lists.suggest_action`).
    out_dir : pathlib.Path
        Folder for the files ``<segment>_<date>_<channel>_owner-<id>.csv`` and
        ``<segment>_<date>_<channel>_unowned.csv``, with ``_<purpose>`` after
        the channel unless the purpose is ``marketing``
        (``churn_winback_20260101_sms_service_owner-AM001.csv``). They replace
        the whole set an earlier export of the same segment, date, channel and
        purpose logged there:
        its files not rewritten are removed and its ``export_log`` rows marked
        ``replaced by a later run at …``. If a file cannot be written, the
        earlier files and rows stay as they were.
    secret : str or bytes
        Key of the pseudonymous id; the caller reads it from ``CRM_ML_EXPORT_SECRET``.
    actor : str
        Who exports (recorded in ``export_log``).
    unmask : bool
        Write full names, phones, emails and customer ids (logged and recorded).
        Phones are written as dialled from China (:func:`dialled_phone`), as
        text Excel keeps (:func:`~crm_ml.tags.files.excel_text_cell`). The
        files are readable by their owner only (mode 0600).
    unmask_reason : str, optional
        Why full personal data is needed, kept in ``export_log.reason``;
        required when ``unmask`` is true, refused otherwise.
    features : pandas.DataFrame, optional
        Indexed by ``customer_id``, as of ``as_of``; used for a missing or
        outdated snapshot and for churn lists.
    churn : bool, optional
        Add ``p_churn, revenue_12m, value_at_risk, churn_reasons,
        suggested_action``. By default, when the rule reads ``p_churn`` or a
        ``churn_risk_*`` tag, or the churn model has scores at ``as_of``;
        ``False`` leaves them out. Every list has ``revenue_12m`` and
        ``recency_days`` and is sorted by value at risk (when it has one),
        then 12-month revenue.
    language : {"zh", "en"}
        Language of the files' headers and suggested actions: pass
        ``settings.language`` (``CRM_ML_LANGUAGE``). Chinese by default, for
        the retailers' retention teams.

    Returns
    -------
    ExportSummary
        Files have columns ``purpose, pseudo_id, [customer_id,] name, [phone,]
        [email,] owner_id, owner_name`` (``phone`` on sms and phone lists,
        ``email`` on email lists), then ``p_churn, revenue_12m, value_at_risk,
        churn_reasons, suggested_action`` (``revenue_12m`` only, without the
        churn columns), then ``recency_days``; headed in ``language``
        (:data:`~crm_ml.segments.headers.LIST_HEADERS`;
        read them back with :func:`~crm_ml.segments.headers.read_list`). Money
        is written with two decimals. With no one to contact, the file holds
        only the header (so a run's output always has the segment's file), and
        the summary says "0 customers to contact" and is logged at WARNING.
        The summary says from which value at risk customers are followed up
        one to one (``follow_up_from``).

    Raises
    ------
    ConfigError
        Without a secret (naming ``CRM_ML_EXPORT_SECRET``).
    ValidationError
        For an unknown channel, purpose or language, no actor, or an unmasked
        export without ``unmask_reason`` (or a reason for a masked one).
    NotFoundError
        For an unknown segment, or no snapshot of its current rule at ``as_of``
        and no features.
    """
    key = require_secret(secret)
    check_channel(channel, purpose)
    list_headers(language)  # refuse an unknown language before any work
    if not actor or not str(actor).strip():
        raise ValidationError("export_list needs an actor (who exports) for the export log.")
    unmask_reason = check_unmask_reason(unmask, unmask_reason)
    folder = check_output_folder(Path(out_dir), what="the list folder")  # before any work
    seg, on = load_segment(store, segment), as_timestamp(as_of)
    members, snapshot_note = _members(store, seg, on, features)
    # A churn list always has the churn columns; any other list when there are scores.
    with_churn = churn if churn is not None else (_is_churn_list(store, seg) or None)
    rows, audit, risk = _build(
        store,
        members,
        on,
        channel=channel,
        purpose=purpose,
        key=key,
        unmask=unmask,
        churn=with_churn,
        features=features,
        language=language,
    )
    if unmask:
        log.warning("%s exported segment %s UNMASKED (full personal data)", actor, seg.name)
    stem = _file_stem(seg.name, on, channel, purpose)
    written, tables = _split_files(rows, audit, folder, stem, language)
    _write_and_log(
        store, written, tables, folder=folder, stem=stem, language=language,
        seg=seg, on=on, actor=actor, channel=channel, purpose=purpose, unmask=unmask,
        unmask_reason=unmask_reason,
    )  # fmt: skip
    counts = audit["consent"].value_counts()
    # Lists for another purpose give everyone one action: no one is followed up by value.
    advised = risk if purpose == MARKETING else None
    summary = ExportSummary(
        seg.name,
        seg.version,
        on,
        len(rows),
        int(counts.get("withdrawn", 0)),
        int(counts.get("unknown", 0)),
        unmask,
        pd.DataFrame(written),
        snapshot_note,
        follow_up_from=None if advised is None else advised.follow_up_from,
        scored_customers=0 if advised is None else len(advised.scores),
    )
    log.log(logging.INFO if summary.kept else logging.WARNING, "%s", summary)
    return summary
