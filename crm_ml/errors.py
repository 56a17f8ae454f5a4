"""Errors raised by crm_ml.

Every error derives from :class:`CrmMlError`, and also from the builtin that
describes it best, so callers can catch either ``CrmMlError`` or, say,
``ValueError``. Messages say what failed, what was expected, what was found,
and what to do next.
"""

from __future__ import annotations

from typing import Any


class CrmMlError(Exception):
    """Base class of every error raised by crm_ml."""


class ConfigError(CrmMlError, ValueError):
    """Settings or configuration (tiers, paths, URLs) are invalid."""


class StoreError(CrmMlError, RuntimeError):
    """The store could not be reached or used."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """A DuckDB or SQLite store file does not exist (and ``create`` was not asked for)."""


class StoreLockedError(StoreError):
    """Another process holds the store (a DuckDB file allows one process at a time)."""


class SchemaVersionError(StoreError):
    """The store is missing, or was created by an incompatible crm_ml version."""


class ValidationError(CrmMlError, ValueError):
    """Input data broke a rule; nothing was written."""


class LoadRejectedError(ValidationError):
    """A load was refused as a whole; the reject report says which rows and why.

    Attributes
    ----------
    rejects : pandas.DataFrame
        One row per problem: ``file, line, column, rule, value, message``.
    report_path : pathlib.Path or None
        Where the reject report was written, if it was.
    """

    def __init__(self, message: str, rejects: Any = None, report_path: Any = None) -> None:
        super().__init__(message)
        self.rejects = rejects
        self.report_path = report_path


class LedgerError(CrmMlError, ValueError):
    """A points or stored-value posting would break the ledger's rules."""


class NotFoundError(CrmMlError, LookupError):
    """A named customer, segment, tag, model or report does not exist."""


class RuleError(CrmMlError, ValueError):
    """A tag or segment rule is malformed, names an unknown field, or mixes types."""
