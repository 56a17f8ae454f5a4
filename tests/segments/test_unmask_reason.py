"""Unmasking needs a reason, kept in export_log; unmasked files are private; guessable keys refused.

Findings F5 and F13 of the compliance review: who unmasked which list and why,
files with full personal data readable by their owner only, and no export
under a key anyone could guess.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_settings import cli_project
from sqlalchemy import select
from test_find_lists import SECRET, project, publish

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.segments.masking import require_secret
from crm_ml.store import Store
from crm_ml.store.schema import ExportLog

__all__ = ["project"]  # the fixture, shared with the find tests


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Files created as on a typical server: readable by everyone unless made private."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _logged(store: Store) -> list[tuple[bool, str | None]]:
    with store.connect() as conn:
        rows = conn.execute(select(ExportLog.unmasked, ExportLog.reason)).all()
    return sorted((bool(u), r) for u, r in rows)


def _modes(paths: object) -> set[int]:
    return {stat.S_IMODE(Path(p).stat().st_mode) for p in paths}  # type: ignore[attr-defined]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_an_unmasked_export_without_a_reason_is_refused_before_any_work(
    store: Store, project: Settings, reason: str | None
) -> None:
    with pytest.raises(ValidationError, match=r"unmasked export .* needs a reason"):
        publish(store, project, unmask=True, unmask_reason=reason)
    assert not project.reports_dir.exists()
    assert _logged(store) == []


def test_a_reason_for_a_masked_export_is_refused(store: Store, project: Settings) -> None:
    with pytest.raises(ValidationError, match=r"reason was given .* for a masked export"):
        publish(store, project, unmask_reason="just because")
    assert _logged(store) == []


def test_the_reason_is_logged_and_unmasked_files_are_private(
    store: Store, project: Settings, umask_022: None
) -> None:
    masked = publish(store, project, folder="masked")
    unmasked = publish(store, project, unmask=True, unmask_reason="  call-back, ticket 1234 ")

    assert _modes(masked.files["path"]) == {0o644}
    assert _modes(unmasked.files["path"]) == {0o600}
    assert _logged(store) == [(False, None)] * 3 + [(True, "call-back, ticket 1234")] * 3


def test_an_unmasked_list_replacing_a_masked_one_is_private_too(
    store: Store, project: Settings, umask_022: None
) -> None:
    publish(store, project)  # its files are 0644, and a staged file takes the earlier mode
    again = publish(store, project, unmask=True, unmask_reason="call-back")
    assert _modes(again.files["path"]) == {0o600}


def test_the_command_refuses_unmask_without_a_reason_before_opening_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_project(tmp_path, monkeypatch)  # no store at all: the reason is checked first
    monkeypatch.setenv("CRM_ML_EXPORT_SECRET", SECRET)
    argv = ["segment", "export", "everyone", "--as-of", "2024-06-01", "--channel", "sms"]

    assert main([*argv, "--unmask"]) == 2
    assert "needs a reason for the export log" in capsys.readouterr().err
    assert main([*argv, "--reason", "why not"]) == 2
    assert "it is recorded only for unmasked ones" in capsys.readouterr().err
    assert not (tmp_path / "data").exists() and not (tmp_path / "reports").exists()


def test_the_export_help_says_unmask_needs_a_reason_and_is_private(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["segment", "export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--unmask, which needs --reason" in text
    assert "readable by their owner only (mode 0600)" in text
    assert "why the list is unmasked (required with --unmask)" in text


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("a" * 16, "has only 1 different character"),
        ("abababababababab", "has only 2 different character"),
        ("0123456789abcdef0123456789abcdef", "starts with the placeholder '0123456789'"),
        ("changeme-changeme-changeme", "starts with the placeholder 'changeme'"),
        ("CHANGEME_before_going_live_2024", "starts with the placeholder 'changeme'"),
        (b"password-for-the-crm-export", "starts with the placeholder 'password'"),
    ],
)
def test_a_guessable_secret_is_refused_with_how_to_make_one(secret: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        require_secret(secret)
    message = str(info.value)
    assert why in message
    assert 'python -c "import secrets; print(secrets.token_hex(32))"' in message
    assert "CRM_ML_EXPORT_SECRET" in message


def test_random_secrets_pass_where_the_same_characters_repeated_do_not() -> None:
    for secret in (secrets.token_hex(32), secrets.token_urlsafe(24), SECRET):
        assert require_secret(secret) == secret.encode()
    with pytest.raises(ConfigError, match="different character"):
        require_secret(SECRET[:4] * 8)  # long enough, but four characters over and over


def test_an_export_with_a_guessable_secret_writes_nothing(store: Store, project: Settings) -> None:
    with pytest.raises(ConfigError, match="only 1 different character"):
        publish(store, project, secret="x" * 32)
    assert not project.reports_dir.exists()
    assert _logged(store) == []
