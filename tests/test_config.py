from pathlib import Path

import pytest

from crm_ml.config import Settings, find_project_root
from crm_ml.errors import ConfigError


def test_defaults_are_anchored_at_the_project_root_not_the_working_directory(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    settings = Settings.from_env(environ={}, cwd=notebooks)
    assert settings.root == tmp_path
    assert settings.database_url == f"duckdb:///{tmp_path}/data/crm.duckdb"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert settings.reports_dir == tmp_path / "reports"
    assert (settings.timezone, settings.currency) == ("Asia/Shanghai", "CNY")


def test_environment_overrides_defaults(tmp_path):
    env = {
        "CRM_ML_HOME": str(tmp_path),
        "CRM_ML_DATABASE_URL": "sqlite:////x/crm.db",
        "MLFLOW_TRACKING_URI": "sqlite:////x/mlflow.db",
        "CRM_ML_REPORTS_DIR": "out",
        "CRM_ML_TIMEZONE": "Europe/London",
        "CRM_ML_CURRENCY": "GBP",
        "CRM_ML_LANGUAGE": "en",
    }
    settings = Settings.from_env(environ=env, cwd=Path("/"))
    assert settings.root == tmp_path
    assert settings.database_url == "sqlite:////x/crm.db"
    assert settings.reports_dir == tmp_path / "out"
    assert (settings.timezone, settings.currency, settings.language) == (
        "Europe/London",
        "GBP",
        "en",
    )


def test_settings_are_frozen(tmp_path):
    settings = Settings.from_env(environ={"CRM_ML_HOME": str(tmp_path)})
    with pytest.raises(AttributeError):
        settings.currency = "USD"  # type: ignore[misc]


def test_no_project_found_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="CRM_ML_HOME"):
        find_project_root(tmp_path, {})


def test_missing_home_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        find_project_root(tmp_path, {"CRM_ML_HOME": str(tmp_path / "nope")})


def test_unknown_time_zone_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="Unknown time zone 'Mars/Base'"):
        Settings.from_env(environ={"CRM_ML_HOME": str(tmp_path), "CRM_ML_TIMEZONE": "Mars/Base"})


def test_unknown_language_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="Unsupported language 'fr'"):
        Settings.from_env(environ={"CRM_ML_HOME": str(tmp_path), "CRM_ML_LANGUAGE": "fr"})
