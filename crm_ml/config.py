"""Settings: where the store, the MLflow tracking store and the reports live.

Settings are built once at an entry point (the CLI, a notebook's setup cell)
with :meth:`Settings.from_env` and passed down; nothing in crm_ml reads the
environment anywhere else.

Paths are anchored at the *project root*, never at the working directory:
Jupyter and papermill run notebooks from ``notebooks/``, and a relative path
there would silently create a second, empty store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_ml.errors import ConfigError

#: Languages of user-facing text (reasons, actions, figure labels).
LANGUAGES = ("zh", "en")

#: Symbols of the currencies money is shown in; other codes are shown as the code.
CURRENCY_SYMBOLS = {"CNY": "¥", "RMB": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$"}

#: Files or folders whose presence marks a project root.
ROOT_MARKERS = ("crm_ml.toml", "pyproject.toml", ".git")


def find_project_root(start: Path, environ: Mapping[str, str]) -> Path:
    """Return ``CRM_ML_HOME`` if set, else the nearest folder at or above ``start`` with a marker.

    Raises
    ------
    ConfigError
        If neither is found.
    """
    home = environ.get("CRM_ML_HOME")
    if home:
        path = Path(home).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(
                f"CRM_ML_HOME={home!r} is not a folder. Create it or unset CRM_ML_HOME."
            )
        return path
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    raise ConfigError(
        f"No crm_ml project found at or above {start}: "
        f"expected one of {', '.join(ROOT_MARKERS)}. Run from inside the project, "
        "create an empty crm_ml.toml in its folder, or set CRM_ML_HOME."
    )


@dataclass(frozen=True)
class Settings:
    """Where crm_ml reads and writes, and how it shows time and money.

    Attributes
    ----------
    root : Path
        The project folder.
    database_url : str
        SQLAlchemy URL of the customer/loyalty store (DuckDB, SQLite or PostgreSQL).
    mlflow_tracking_uri : str
        MLflow tracking store; a SQLite file under ``mlruns/`` by default.
    reports_dir : Path
        Where report runs publish, ``reports/<as_of>/``.
    timezone : str
        IANA zone of the business (source timestamps without a zone are read in it).
    currency : str
        ISO 4217 code used when showing money.
    language : str
        ``zh`` or ``en``: the language of score reasons and suggested actions.
    """

    root: Path
    database_url: str
    mlflow_tracking_uri: str
    reports_dir: Path
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    language: str = "zh"

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ConfigError(
                f"Unsupported language {self.language!r}; expected one of {', '.join(LANGUAGES)}."
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"Unknown time zone {self.timezone!r}; "
                "expected an IANA name such as 'Asia/Shanghai'."
            ) from exc

    def as_environment(self) -> dict[str, str]:
        """Return the environment variables from which :meth:`from_env` builds these settings.

        A report's kernel is another process that builds its settings from its
        environment: given these, it reads the store and registry of the run
        that started it, not those its working folder or shell would give.
        """
        return {
            "CRM_ML_HOME": str(self.root),
            "CRM_ML_DATABASE_URL": self.database_url,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "CRM_ML_REPORTS_DIR": str(self.reports_dir),
            "CRM_ML_TIMEZONE": self.timezone,
            "CRM_ML_CURRENCY": self.currency,
            "CRM_ML_LANGUAGE": self.language,
        }

    @property
    def mlruns_dir(self) -> Path:
        """Folder of the MLflow tracking database and artifacts."""
        return self.root / "mlruns"

    @property
    def data_dir(self) -> Path:
        """Folder of the embedded store and local data files."""
        return self.root / "data"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Settings:
        """Build settings from the environment, with defaults anchored at the project root.

        Reads ``CRM_ML_HOME``, ``CRM_ML_DATABASE_URL``, ``MLFLOW_TRACKING_URI``,
        ``CRM_ML_REPORTS_DIR``, ``CRM_ML_TIMEZONE``, ``CRM_ML_CURRENCY`` and
        ``CRM_ML_LANGUAGE``.
        """
        env = os.environ if environ is None else environ
        root = find_project_root(cwd or Path.cwd(), env)
        reports = Path(env.get("CRM_ML_REPORTS_DIR") or root / "reports")
        if not reports.is_absolute():
            reports = root / reports
        return cls(
            root=root,
            database_url=env.get("CRM_ML_DATABASE_URL")
            or f"duckdb:///{root / 'data' / 'crm.duckdb'}",
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
            reports_dir=reports,
            timezone=env.get("CRM_ML_TIMEZONE") or "Asia/Shanghai",
            currency=env.get("CRM_ML_CURRENCY") or "CNY",
            language=env.get("CRM_ML_LANGUAGE") or "zh",
        )
