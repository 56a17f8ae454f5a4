"""The demo's lists are written under a key the project keeps, so they stay searchable (13a, H3).

Without ``CRM_ML_EXPORT_SECRET``, ``crm-ml demo`` used a key made for the run
and forgotten: its lists could never be searched by ``crm-ml lists find``.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.errors import ConfigError
from crm_ml.pipeline import _demo_secret
from crm_ml.segments.masking import require_secret

KEY_FILE = Path("data") / "demo_export_secret"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("CRM_ML_EXPORT_SECRET", raising=False)
    return project_settings(tmp_path)


def _said(settings: Settings) -> list[str]:
    lines: list[str] = []
    _demo_secret(settings, lines.append)
    return lines


def test_the_key_is_made_once_in_data_private_and_the_way_to_use_it_said(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    (first,) = _said(settings)

    path = settings.root / KEY_FILE
    key = os.environ["CRM_ML_EXPORT_SECRET"]
    assert path.read_text() == key + "\n" and require_secret(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first == (
        "      (CRM_ML_EXPORT_SECRET not set: the lists use the demo's key, made in "
        f"{KEY_FILE}. To find a customer in them or export from JupyterLab later, first: "
        f"export CRM_ML_EXPORT_SECRET=$(cat {KEY_FILE}))"
    )
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no draft left

    monkeypatch.delenv("CRM_ML_EXPORT_SECRET")  # a later demo run, in a new shell
    (again,) = _said(settings)
    assert os.environ["CRM_ML_EXPORT_SECRET"] == key
    assert f"the lists use the demo's key, kept in {KEY_FILE}." in again


def test_a_key_that_is_set_is_used_and_nothing_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_ML_EXPORT_SECRET", "the-teams-own-key-3c9e1f7a")
    assert _said(settings) == []
    assert not (settings.root / "data").exists()


def test_a_kept_key_that_exports_would_refuse_is_refused_naming_the_file(
    settings: Settings,
) -> None:
    path = settings.root / KEY_FILE
    path.parent.mkdir()
    path.write_text("\n")  # emptied by hand
    with pytest.raises(ConfigError, match=r"^The demo's export key in .*demo_export_secret cannot"):
        _said(settings)
