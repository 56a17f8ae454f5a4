"""The column headers of written contact lists, in the retention team's language.

Code keeps one vocabulary of column names (``pseudo_id``, ``p_churn``,
``value_at_risk`` …): the frames of :mod:`crm_ml.segments.lists` and the
summary of :func:`~crm_ml.segments.export_list` use them whatever the
language. Only the files a retention agent opens in Excel are localised, with
:data:`LIST_HEADERS` (``CRM_ML_LANGUAGE``: Chinese by default, English on
request). :func:`read_list` reads such a file back with the code's names, so a
report or a test that reads lists works in either language.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crm_ml.config import LANGUAGES
from crm_ml.errors import ValidationError
from crm_ml.store.schema import CONSENT_PURPOSES
from crm_ml.tags.files import read_excel_csv

#: Every column a list can have, in the order it is written. A list carries the
#: contact columns its channel needs only (:data:`~crm_ml.segments.lists.CONTACT_COLUMNS`).
#: New columns go last: spreadsheets and macros find the earlier ones by position.
LIST_COLUMNS = (
    "purpose",
    "pseudo_id",
    "customer_id",
    "name",
    "phone",
    "email",
    "owner_id",
    "owner_name",
    "p_churn",
    "revenue_12m",
    "value_at_risk",
    "churn_reasons",
    "suggested_action",
    "recency_days",
)

#: The header of each list column, per language. English headers are the code's names.
LIST_HEADERS: dict[str, dict[str, str]] = {
    "zh": {
        "purpose": "用途",
        "pseudo_id": "匿名编号",
        "customer_id": "客户编号",
        "name": "姓名",
        "phone": "手机号",
        "email": "邮箱",
        "owner_id": "负责人编号",
        "owner_name": "负责人",
        "p_churn": "流失概率",
        "revenue_12m": "近12个月净消费额",
        "value_at_risk": "流失风险金额",
        "churn_reasons": "流失原因",
        "suggested_action": "建议动作",
        "recency_days": "距上次购买天数",
    },
    "en": {column: column for column in LIST_COLUMNS},
}

#: What the ``purpose`` cells of a list say, per language: the consent purpose it
#: was cleared for, so whoever holds the file knows what it may be used for.
PURPOSE_LABELS: dict[str, dict[str, str]] = {
    "zh": {"marketing": "营销", "service": "服务", "research": "调研"},
    "en": {purpose: purpose for purpose in CONSENT_PURPOSES},
}


def list_headers(language: str) -> dict[str, str]:
    """Return the header of each list column in ``language`` (``zh`` or ``en``).

    Raises
    ------
    ValidationError
        If ``language`` is not one of :data:`crm_ml.config.LANGUAGES`.
    """
    if language not in LANGUAGES:
        raise ValidationError(
            f"Unknown list language {language!r}; expected one of {', '.join(LANGUAGES)} "
            "(settings.language, from CRM_ML_LANGUAGE)."
        )
    return dict(LIST_HEADERS[language])


def localise_columns(frame: pd.DataFrame, language: str) -> pd.DataFrame:
    """Return ``frame`` with the list headers of ``language`` as column names.

    A column without a header is refused (``KeyError``) rather than written
    under its code name: a new list column must be added to
    :data:`LIST_HEADERS`, or a Chinese list would show it in English.
    """
    headers = list_headers(language)
    return frame.set_axis([headers[str(c)] for c in frame.columns], axis="columns")


def machine_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with list headers of any language renamed to the code's column names.

    Other columns keep their names, so a list edited in Excel (a column added)
    still reads.
    """
    names = {h: c for headers in LIST_HEADERS.values() for c, h in headers.items()}
    return frame.rename(columns=names)


def read_list(path: str | Path) -> pd.DataFrame:
    """Read a list written by :func:`~crm_ml.segments.export_list`, with the code's column names.

    Cells are read as written: text, so ids keep their leading zeros and empty
    cells stay ``""``; an unmasked phone comes back as the number to dial,
    without the mark that keeps it text in Excel. Columns are named as in
    :data:`LIST_COLUMNS` whatever the language of the file's header, and the
    purpose is read back as its code (营销 -> ``marketing``). Lists
    written before they carried ``purpose`` and the contact columns of their
    channel only read as they were written (without ``purpose``, with ``phone``
    and ``email``).

    Returns
    -------
    pandas.DataFrame
        One row per customer of the file, default index; columns among
        :data:`LIST_COLUMNS`, in the file's order.
    """
    frame = machine_columns(read_excel_csv(path))
    if "purpose" in frame:
        codes = {
            label: code for labels in PURPOSE_LABELS.values() for code, label in labels.items()
        }
        frame["purpose"] = frame["purpose"].replace(codes)
    return frame
