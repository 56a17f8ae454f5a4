"""Tagging the customers listed in a file (a campaign's list of ids) as one batch.

A list comes from a campaign team, usually saved by Excel: UTF-8 with a BOM or
GBK, ids whose leading zeros a spreadsheet may have dropped. It is read as
``crm-ml import`` reads a source (:func:`crm_ml.store.sources.read_source`:
every value as text, every row with its line) and its ids are checked as the
importer checks a reference to a customer
(:func:`crm_ml.store.reconcile.check_references`: ``12`` for a stored
``00012`` is named as such, an unknown id by its line). Only when every row is
good are the customers tagged, by :func:`~crm_ml.tags.manual.tag_customers` or
:func:`~crm_ml.tags.manual.untag_customers` (``source='batch'``, the file's name
kept in the reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.errors import LoadRejectedError, ValidationError
from crm_ml.store.admin import utc_now
from crm_ml.store.connection import Store
from crm_ml.store.loading import log_bad_records
from crm_ml.store.reconcile import check_references
from crm_ml.store.rejects import RejectLog, describe
from crm_ml.store.sources import HeaderCheck, Source, decode_to_utf8, read_source
from crm_ml.store.validation import Reference, TableSpec
from crm_ml.tags.manual import require_audit, tag_customers, untag_customers

log = logging.getLogger(__name__)

_WORKBOOKS = (".xlsx", ".xlsm", ".xls")

_COUNTED = {
    False: ("added", "already", "already had it"),
    True: ("removed", "not_tagged", "did not have it"),
}


@dataclass(frozen=True)
class FileTagging:
    """What tagging from one file did.

    Attributes
    ----------
    tag, file : str
        The tag and the file's name.
    encoding : str
        How the file was read: ``'UTF-8'``, ``'GBK'`` or ``'Parquet'``.
    rows : int
        Data rows of the file (empty rows left out).
    changes : pandas.DataFrame
        RangeIndex; columns ``customer_id`` and ``action``, each customer once,
        as returned by :func:`~crm_ml.tags.manual.tag_customers` (``added`` /
        ``already`` / ``erased``: erased on request, not tagged) or
        :func:`~crm_ml.tags.manual.untag_customers` (``removed`` / ``not_tagged``).
    removed : bool
        Whether the tag was removed rather than given.
    """

    tag: str
    file: str
    encoding: str
    rows: int
    changes: pd.DataFrame
    removed: bool = False

    def summary(self) -> str:
        """One line: the tag, the file, and how many customers changed, were so or were erased."""
        done, same, same_text = _COUNTED[self.removed]
        actions = self.changes["action"]
        customers = len(self.changes)
        repeated = f" ({self.rows - customers} repeated)" if self.rows > customers else ""
        erased = int((actions == "erased").sum())
        skipped = f", {erased} erased on request (not tagged)" if erased else ""
        return (
            f"{self.tag} ← {self.file} ({self.encoding}): {self.rows} rows, {customers} customers"
            f"{repeated}; {int((actions == done).sum())} {done}, "
            f"{int((actions == same).sum())} {same_text}{skipped}"
        )


def _column_check(name: str, column: str) -> HeaderCheck:
    def check(header: list[str]) -> None:
        if column not in header:
            raise ValidationError(
                f"{name}:1: no column {column!r}; found {header}. Name the id column with "
                "--column (column= in Python), or rename it in the file."
            )

    return check


def _detect_encoding(path: Path, encoding: str | None) -> str | None:
    """Return ``encoding``, or ``'gbk'`` for an undeclared file that is GBK rather than UTF-8.

    The importer asks for ``--encoding gbk``; a list of ids is read either way,
    as its ids are ASCII and Excel saves Chinese CSV files as GBK by default.
    """
    if encoding is not None or path.suffix.lower() not in (".csv", ".txt") or not path.is_file():
        return encoding
    raw = path.read_bytes()
    try:
        decode_to_utf8(raw, None, path.name)
        return None
    except ValidationError as not_utf8:
        try:
            decode_to_utf8(raw, "gbk", path.name)
        except ValidationError:
            raise ValidationError(
                f"{path.name} is neither UTF-8 nor GBK text ({not_utf8}). Pass the file's "
                "encoding (--encoding utf-8 or --encoding gbk on the command line, encoding= in "
                "Python), or save it from Excel as 'CSV UTF-8'."
            ) from not_utf8
    log.info("%s is not UTF-8; read it as GBK", path.name)
    return "gbk"


def _read_list(path: Path, column: str, encoding: str | None) -> tuple[Source, str]:
    if path.suffix.lower() in _WORKBOOKS:
        raise ValidationError(
            f"{path.name} is an Excel workbook; expected a .csv (or .parquet) file. In Excel, "
            "save the sheet as 'CSV UTF-8' (File → Save As) and pass that file."
        )
    encoding = _detect_encoding(path, encoding)
    source = read_source(path, encoding=encoding, check_header=_column_check(path.name, column))
    label = "Parquet" if source.unit == "row" else "GBK" if encoding == "gbk" else "UTF-8"
    return source, label


def _file_ids(source: Source, column: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the stripped ids (blank → missing) of rows not wholly empty, and their lines."""
    # Parquet columns keep their types (an id may be a number); a missing value is blank.
    text = source.frame.astype("str").fillna("").apply(lambda values: values.str.strip())
    filled = (text != "").any(axis=1).to_numpy()
    ids = text.loc[filled, column].reset_index(drop=True)
    return pd.DataFrame({column: ids.where(ids != "")}), source.lines[filled]


def _problems(store: Store, source: Source, column: str) -> tuple[pd.DataFrame, RejectLog]:
    """Check every row as the importer checks a reference to a customer; return ids and rejects."""
    ids, lines = _file_ids(source, column)
    rejects = RejectLog(source.name, lines, unit=source.unit)
    log_bad_records(source, rejects, len(source.frame.columns))  # short and long rows
    rejects.add(
        ids[column].isna().to_numpy(), column, "blank", ids[column],
        "blank customer id in a row that has other values; fill it in or delete the row",
    )  # fmt: skip
    spec = TableSpec(
        name=f"tag file {source.name}", kind="ledger", columns=(), key=(), unique=(),
        references=(Reference(column, "customer", "customer_id"),), row_rules=(),
    )  # fmt: skip
    with store.connect() as conn:
        check_references(conn, spec, ids, rejects)
    return ids, rejects


def _refuse(source: Source, rejects: RejectLog, rows: int) -> None:
    if not rejects.count:
        return
    frame = rejects.frame()
    raise LoadRejectedError(
        f"{source.name}: {rejects.count} of {rows} rows refused; nothing was tagged. "
        f"Problems:\n{describe(frame)}\nFix these rows (keep ids as text: re-save the original "
        "export rather than a copy opened as numbers) and run again.",
        rejects=frame,
    )


def tag_customers_from_file(
    store: Store,
    tag: str,
    path: str | Path,
    *,
    actor: str,
    reason: str,
    at: Any = None,
    column: str = "customer_id",
    remove: bool = False,
    encoding: str | None = None,
) -> FileTagging:
    """Give (or, with ``remove``, end) a manual tag for the customers listed in a file.

    Parameters
    ----------
    store : Store
    tag : str
        A manual tag.
    path : str or Path
        A ``.csv`` file (UTF-8 with or without a BOM, or GBK; other columns
        are ignored, wholly empty rows skipped) or a ``.parquet`` file.
    actor, reason : str
        Who asked for it and why; the reason is kept with ``[file: NAME]``.
    at : datetime-like, optional
        When the change takes effect; by default now.
    column : str
        The column holding customer ids.
    remove : bool
        End the tag for these customers instead of giving it.
    encoding : {'utf-8', 'gbk'}, optional
        By default UTF-8, or GBK when the file is not UTF-8.

    Returns
    -------
    FileTagging

    Raises
    ------
    ValidationError
        If the file cannot be read (missing column, undecodable, workbook), or
        the tag is not a manual one; nothing is written.
    LoadRejectedError
        If any row is short or long, has a blank id, an id that lost its
        leading zeros or an unknown id; ``rejects`` lists them, nothing is written.
    """
    require_audit(actor, reason)
    path = Path(path)
    source, label = _read_list(path, column, encoding)
    ids, rejects = _problems(store, source, column)
    _refuse(source, rejects, len(ids) + len(source.bad_records))
    when, customers = utc_now() if at is None else at, ids[column].tolist()
    noted = f"{reason} [file: {source.name}]"
    if remove:
        changes = untag_customers(store, tag, customers, at=when, actor=actor, reason=noted)
    else:
        changes = tag_customers(
            store, tag, customers, at=when, actor=actor, reason=noted, source="batch"
        )
    return FileTagging(tag, source.name, label, len(ids), changes, remove)
