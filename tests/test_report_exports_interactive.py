"""A report notebook opened in JupyterLab without the export secret (review 13a, M7).

``check_report_exports`` in the notebooks' setup cell refused a missing secret
in every session, so "Run All" stopped before the first chart. It still refuses
under ``crm-ml report run`` (tests/test_notebooks_run_checks.py runs one); in
any other session the analysis runs and the note says how to write the lists.
The notebooks themselves run that way in tests/test_notebooks_interactive.py.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from crm_ml.errors import ConfigError
from crm_ml.report_parameters import check_report_exports, in_report_run, report_actor
from crm_ml.store import Store

STAGED = Path("/srv/crm/reports/_staging/2024-10-01-retention_analysis-1a2b3c4d/retention_analysis")


def _check(store: Store, **overrides: object) -> list[str]:
    given: dict = {"channel": "sms", "purpose": "marketing", "secret": None, "actor": "ana",
                   "language": "zh", "out_dir": "lists", **overrides}  # fmt: skip
    return check_report_exports(store, **given)


@pytest.mark.parametrize("secret", [None, ""])
def test_without_the_secret_a_session_goes_on_with_a_note(
    store: Store, caplog: pytest.LogCaptureFixture, secret: str | None
) -> None:
    assert _check(store, secret=secret) == []
    assert "CRM_ML_EXPORT_SECRET is not set, so this session writes no list" in caplog.text
    assert "export CRM_ML_EXPORT_SECRET=$(cat data/demo_export_secret)" in caplog.text
    assert caplog.records[-1].levelname == "WARNING"


def test_under_a_report_run_the_secret_is_still_required(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"Set the environment variable CRM_ML_EXPORT_SECRET"):
        _check(store, out_dir=STAGED)


def test_a_secret_that_is_given_is_checked_in_any_session(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"^The export secret is 5 bytes; at least 16"):
        _check(store, secret="short")


def test_the_other_inputs_are_checked_without_the_secret_too(store: Store) -> None:
    from crm_ml.errors import ValidationError

    with pytest.raises(ValidationError, match=r"^Unknown channel 'fax'"):
        _check(store, channel="fax")


@pytest.mark.parametrize(
    ("out_dir", "expected"),
    [
        (STAGED, True),
        ("lists", False),  # the notebooks' default: JupyterLab
        ("/home/ana/lists", False),
        ("/srv/crm/reports/2024-10-01/retention_analysis", False),
    ],
)
def test_a_report_run_is_told_by_its_staging_folder(out_dir: object, expected: bool) -> None:
    assert in_report_run(out_dir) is expected  # type: ignore[arg-type]


def test_the_actor_is_the_report_under_a_run_and_the_person_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "ana")
    assert report_actor(None, report="segment_lists", out_dir=STAGED) == "segment_lists report"
    assert report_actor(None, report="segment_lists", out_dir="lists") == "ana"
    assert report_actor(" ", report="segment_lists", out_dir="lists") == "ana"
    assert report_actor(" 王分析 ", report="segment_lists", out_dir=STAGED) == "王分析"


def test_without_a_login_name_the_report_is_the_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found: 1000")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert report_actor(None, report="retention_analysis", out_dir="lists") == (
        "retention_analysis report"
    )
