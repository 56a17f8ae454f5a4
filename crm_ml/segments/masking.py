"""Masking personal data in lists, and keyed pseudonymous ids.

Lists show ``张*``, ``138****5678`` and ``a***@example.com`` unless full values
are explicitly asked for. The pseudonymous id is an HMAC-SHA256 of the
customer id under a secret key, so other systems can join on it, while
nobody without the key can recompute it from a phone number or an id (a
plain hash of an 11-digit phone is reversed by trying every number).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from crm_ml.errors import ConfigError

#: The environment variable the caller should read the export secret from.
SECRET_ENV = "CRM_ML_EXPORT_SECRET"
MIN_SECRET_BYTES = 16
MIN_SECRET_CHARACTERS = 8
#: Beginnings of secrets copied from examples or typed as a stand-in, refused as guessable.
PLACEHOLDER_SECRETS = (
    "changeme",
    "change-me",
    "change_me",
    "replaceme",
    "replace-me",
    "your-secret",
    "your_secret",
    "yoursecret",
    "password",
    "0123456789",
    "1234567890",
    "abcdef0123",
    "abcdefghij",
    "qwertyuiop",
)
_MAKE_SECRET = 'python -c "import secrets; print(secrets.token_hex(32))"'

_NON_DIGITS = re.compile(r"\D")
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
#: Seven or more digits, maybe split by spaces or dashes: phones, ID-card and card numbers.
_NUMBER_IN_TEXT = re.compile(r"\+?\d(?:[ -]?\d){6,}[Xx]?")
#: A date (and time) the number pattern would otherwise take for a phone: ``2025-12-21 09:00``.
_DATE_IN_TEXT = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")


def require_secret(secret: str | bytes | None) -> bytes:
    """Return the export secret as bytes, or refuse with the variable to set.

    Raises
    ------
    ConfigError
        If it is missing, shorter than 16 bytes, or guessable: fewer than 8
        different characters (``aaaa…``), or one of :data:`PLACEHOLDER_SECRETS`
        at its start (``changeme…``, ``0123456789abcdef…``).
    """
    if not secret:
        raise ConfigError(
            f"Exporting a list needs a secret key for the pseudonymous ids, and none was given. "
            f"Set the environment variable {SECRET_ENV}, which `crm-ml segment export` and "
            "`crm-ml report run` read (e.g. to the output of "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`), and keep it the same "
            f"across exports; in Python, pass it as secret=os.environ[{SECRET_ENV!r}]."
        )
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"The export secret is {len(key)} bytes; at least {MIN_SECRET_BYTES} "
            f"are needed. Set a longer {SECRET_ENV}."
        )
    _refuse_weak(key)
    return key


def _refuse_weak(key: bytes) -> None:
    """Refuse a key anyone could guess: whoever has it can re-identify every list."""
    distinct = len(set(key))
    lowered = key.lower()
    placeholder = next((p for p in PLACEHOLDER_SECRETS if lowered.startswith(p.encode())), None)
    if distinct >= MIN_SECRET_CHARACTERS and placeholder is None:
        return
    why = (
        f"starts with the placeholder {placeholder!r}"
        if placeholder
        else f"has only {distinct} different character(s); at least {MIN_SECRET_CHARACTERS} "
        "are needed"
    )
    raise ConfigError(
        f"The export secret {why}, so anyone could guess it and re-identify the lists' "
        f"pseudonymous ids. Make a random one with `{_MAKE_SECRET}`, set it as {SECRET_ENV} and "
        "keep it the same across exports (lists written with another key do not match)."
    )


def pseudonymous_id(customer_id: str, key: bytes) -> str:
    """Return the keyed pseudonymous id of a customer (64 hex characters)."""
    message = f"crm_ml:customer:{customer_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def mask_name(name: str | None) -> str:
    """Keep the first character (the family name in Chinese): ``张三`` -> ``张*``."""
    if not name:
        return ""
    text = str(name).strip()
    return text[:1] + "*" * max(len(text) - 1, 1) if len(text) > 1 else "*"


def mask_phone(phone: str | None) -> str:
    """Show a mobile as ``138****5678``; other numbers keep their country code and last 4 digits."""
    if not phone:
        return ""
    digits = _NON_DIGITS.sub("", str(phone))
    if digits.startswith("86") and _CN_MOBILE.fullmatch(digits[2:]):
        digits = digits[2:]
    if _CN_MOBILE.fullmatch(digits):
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) <= 6:
        return "*" * len(digits)
    return f"+{digits[:2]}{'*' * (len(digits) - 6)}{digits[-4:]}"


def mask_email(email: str | None) -> str:
    """Keep the first character and the domain: ``alice@example.com`` -> ``a***@example.com``."""
    if not email:
        return ""
    local, _, domain = str(email).partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def _mask_number(found: re.Match[str]) -> str:
    text = found.group()
    date = _DATE_IN_TEXT.match(text)
    if date is not None:  # a date (and time) kept; digits run on after it are not
        return date.group() + _NUMBER_IN_TEXT.sub(_mask_number, text[date.end() :])
    digits = _NON_DIGITS.sub("", text)
    if _CN_MOBILE.fullmatch(digits.removeprefix("86")):
        return mask_phone(digits)
    return "*" * (len(digits) - 4) + text[-4:]


def mask_free_text(text: str | None) -> str:
    """Mask what looks like a contact or an id in text people typed.

    Emails become ``a***@example.com``, mobiles ``131****5364``, other runs of 7
    or more digits (ID-card, card and landline numbers) keep their last 4.
    Names and addresses cannot be told from other words: where a view promises
    masking, text a customer wrote is hidden instead (see ``customer_360``).
    """
    if not text:
        return ""
    masked = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group()), str(text))
    return _NUMBER_IN_TEXT.sub(_mask_number, masked)
