"""Normalising identifiers and coded values on the way into the store.

Each function returns the canonical form, or raises ``ValueError`` with a
short reason that the loader turns into a reject naming file, line and column.
"""

from __future__ import annotations

import re

_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_INTERNATIONAL = re.compile(r"\+[1-9]\d{6,14}")
_SCIENTIFIC = re.compile(r"^[\d.]+[eE][+-]?\d+$")
# Ids may be hexadecimal (``12e45``), so an id counts as mangled only with a decimal
# point or a signed exponent, which spreadsheets always write (``1.38E+10``, ``1E+11``).
_SCIENTIFIC_ID = re.compile(r"^\d+(?:\.\d+[eE][+-]?|[eE][+-])\d+$")
_PHONE_NOISE = re.compile(r"[\s\-().]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: Consent answers seen in retailers' exports, mapped explicitly. Anything else means no.
CONSENT_VALUES = {
    "granted": "granted",
    "y": "granted",
    "yes": "granted",
    "1": "granted",
    "true": "granted",
    "是": "granted",
    "同意": "granted",
    "withdrawn": "withdrawn",
    "n": "withdrawn",
    "no": "withdrawn",
    "0": "withdrawn",
    "false": "withdrawn",
    "否": "withdrawn",
    "撤回": "withdrawn",
    "不同意": "withdrawn",
    # Withdrawals as customers and SMS gateways word them ("回T退订" replies arrive as 退订).
    "退订": "withdrawn",
    "已退订": "withdrawn",
    "取消订阅": "withdrawn",
    "取消": "withdrawn",
    "拒绝": "withdrawn",
    "revoked": "withdrawn",
    "opt-out": "withdrawn",
    "opt out": "withdrawn",
    "optout": "withdrawn",
    "opted out": "withdrawn",
    "opted-out": "withdrawn",
    "unsubscribe": "withdrawn",
    "unsubscribed": "withdrawn",
    "unknown": "unknown",
    "": "unknown",
    "未知": "unknown",
}


#: Profile words of retailers' exports, by the code the customer import stores and the
#: profile features read (crm_ml.features.profile): one table for both, so that what is
#: stored and what is counted agree. Matched trimmed and in any case (APP, App → app).
#: The codes are the keys of ``VALUE_LABELS["acquisition_channel"]`` in crm_ml.features.spec,
#: whose Chinese labels are here too.
CHANNEL_WORDS = {
    "store": "store",
    "门店": "store",
    "线下门店": "store",
    "实体店": "store",
    "线下": "store",
    "app": "app",
    "手机app": "app",
    "mini_program": "mini_program",
    "mini program": "mini_program",
    "miniprogram": "mini_program",
    "小程序": "mini_program",
    "微信小程序": "mini_program",
    "web": "web",
    "website": "web",
    "官网": "web",
    "官方网站": "web",
    "网站": "web",
    "referral": "referral",
    "推荐": "referral",
    "转介绍": "referral",
    "老客推荐": "referral",
    "老带新": "referral",
    "other": "other",
    "其他": "other",
    "其它": "other",
    "其他渠道": "other",
    "unknown": "unknown",
    "未知": "unknown",
}

#: Gender words, by the code stored and read (先生/女士 are how a CRM addresses a customer).
GENDER_WORDS = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "女": "female",
    "女性": "female",
    "女士": "female",
    "小姐": "female",
    "male": "male",
    "m": "male",
    "man": "male",
    "男": "male",
    "男性": "male",
    "先生": "male",
    "unknown": "unknown",
    "未知": "unknown",
    "保密": "unknown",
}


def words_for(words: dict[str, str], code: str) -> tuple[str, ...]:
    """Return the words of ``words`` that stand for ``code`` (``GENDER_WORDS``, ``female``)."""
    return tuple(word for word, coded in words.items() if coded == code)


def normalize_phone(raw: str) -> str:
    """Return a phone number in E.164 form; Chinese mobiles become ``+86…``.

    Raises
    ------
    ValueError
        For numbers mangled by a spreadsheet (``1.38E+10``) or not a phone at all.

    Examples
    --------
    >>> normalize_phone("138-0013-8000")
    '+8613800138000'
    >>> normalize_phone("0086 138 0013 8000")
    '+8613800138000'
    """
    text = str(raw).strip()
    _refuse_scientific(text, _SCIENTIFIC, "phones")
    compact = _PHONE_NOISE.sub("", text)
    if compact.startswith("0086"):
        compact = "+86" + compact[4:]
    elif compact.startswith("86") and _CN_MOBILE.fullmatch(compact[2:]):
        compact = "+" + compact
    if _CN_MOBILE.fullmatch(compact):
        return "+86" + compact
    if compact.startswith("+86") and not _CN_MOBILE.fullmatch(compact[3:]):
        raise ValueError(f"{text!r} is not a valid Chinese mobile number (1[3-9] and 11 digits)")
    if _INTERNATIONAL.fullmatch(compact):
        return compact
    raise ValueError(f"{text!r} is not a phone number (expected e.g. 13800138000 or +44…)")


def normalize_id(raw: str) -> str:
    """Return an id as given: ids are text, so ``000123`` stays ``000123``.

    Raises
    ------
    ValueError
        For an id a spreadsheet turned into a number in scientific notation
        (``1.38E+10``): its digits are lost.
    """
    text = str(raw).strip()
    _refuse_scientific(text, _SCIENTIFIC_ID, "ids")
    return text


def _refuse_scientific(text: str, pattern: re.Pattern[str], what: str) -> None:
    if pattern.match(text):
        raise ValueError(
            f"{text!r} looks like a number reformatted by a spreadsheet (scientific notation); "
            f"export {what} as text"
        )


def normalize_email(raw: str) -> str:
    """Return an email address trimmed and lower-cased.

    Raises
    ------
    ValueError
        If it is not shaped like ``local@domain.tld``.
    """
    text = str(raw).strip().lower()
    if not _EMAIL.match(text):
        raise ValueError(f"{raw!r} is not an email address")
    return text


def normalize_consent(raw: object) -> str:
    """Map a consent answer (``Y``, ``是``, ``1``, blank …) to granted, withdrawn or unknown.

    Unrecognised answers become ``unknown``, which means no: consent is never assumed.
    """
    if raw is None or (isinstance(raw, float) and raw != raw):
        return "unknown"
    return CONSENT_VALUES.get(str(raw).strip().lower(), "unknown")


def is_recognised_consent(raw: object) -> bool:
    """Whether ``raw`` is one of the explicitly mapped consent answers (blank included)."""
    if raw is None or (isinstance(raw, float) and raw != raw):
        return True
    return str(raw).strip().lower() in CONSENT_VALUES
