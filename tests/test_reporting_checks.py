"""What a report run checks before it writes: list-export inputs and probability thresholds.

``check_report_exports`` is what the exporting notebooks call in their setup
cell; the probability thresholds are checked by ``run_report`` before a kernel
starts. The notebooks' own runs are in tests/test_notebooks_run_checks.py.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, NotFoundError, ValidationError
from crm_ml.report_parameters import coerce_parameters
from crm_ml.reporting import run_report
from crm_ml.segments import Segment, save_segment, segment_definitions_frame
from crm_ml.store import Store

REPO = Path(__file__).resolve().parents[1]
SECRET = "reporting-checks-test-key-2f9e"
#: Where a report run's notebook writes its lists (``output_dir``).
STAGED = "/srv/crm/reports/_staging/2024-10-01-segment_lists-1a2b3c4d/segment_lists"


def _check(store: Store, segments=(), **overrides):
    from crm_ml.report_parameters import check_report_exports

    given = {
        "channel": "sms",
        "purpose": "marketing",
        "secret": SECRET,
        "actor": "report",
        "language": "zh",
        "out_dir": "lists",
        **overrides,
    }
    return check_report_exports(store, segments, **given)


def test_known_inputs_return_the_stored_names_and_write_nothing(store: Store) -> None:
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    names = _check(store, ["lapsed", "category_prospects"], channel="email", purpose="service")
    assert names == ["lapsed", "maternity_baby_prospects"]  # a template's segment's name
    assert list(segment_definitions_frame(store).index) == ["lapsed"]  # the template not saved


def test_without_segments_the_inputs_are_still_checked(store: Store) -> None:
    assert _check(store) == []
    with pytest.raises(ValidationError, match=r"^Unknown channel 'fax'; expected one of \("):
        _check(store, channel="fax")


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"channel": "fax"}, ValidationError, r"^Unknown channel 'fax'; expected one of \('sms'"),
        ({"purpose": "sales"}, ValidationError, r"^Unknown purpose 'sales'; expected one of"),
        # Under a report run only (its staging folder): tests/test_report_exports_interactive.py
        (
            {"secret": None, "out_dir": STAGED},
            ConfigError,
            r"Set the environment variable CRM_ML_EXPORT_SECRET",
        ),
        (
            {"secret": "", "out_dir": STAGED},
            ConfigError,
            r"Set the environment variable CRM_ML_EXPORT_SECRET",
        ),
        ({"secret": "short"}, ConfigError, r"^The export secret is 5 bytes; at least 16"),
        ({"language": "fr"}, ValidationError, r"^Unknown list language 'fr'"),
        ({"actor": " "}, ValidationError, r"^A report's lists need an actor \(who exports\)"),
    ],
)
def test_each_bad_input_is_refused(store: Store, overrides, error, match) -> None:
    with pytest.raises(error, match=match):
        _check(store, ["churn_winback"], **overrides)
    assert segment_definitions_frame(store).empty


def test_an_unknown_segment_is_refused_with_the_nearest_name(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"No segment or template named 'churn_winbak'\. Did"):
        _check(store, ["points_reminder", "churn_winbak"])
    assert segment_definitions_frame(store).empty


def test_a_list_folder_that_is_a_file_is_refused(store: Store, tmp_path: Path) -> None:
    (tmp_path / "lists").write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Cannot write the list folder .*lists: .* is a file"):
        _check(store, out_dir=tmp_path / "lists")


# --------------------------------------------------------------------- probability thresholds

DECLARED = {"churn_threshold": 0.6, "revenue_threshold": 1000.0, "horizon": 90}


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("60", "probabilities run 0–1; for 60 % write 0.6"),
        (75, "probabilities run 0–1; for 75 % write 0.75"),
        ("1.5", "probabilities run 0–1; for 1.5 % write 0.015"),
        ("250", "probabilities run 0–1"),
        ("-0.2", "probabilities run 0–1"),
    ],
)
def test_a_probability_threshold_outside_0_to_1_is_refused(value, hint) -> None:
    with pytest.raises(ValidationError) as err:
        coerce_parameters("retention_analysis", DECLARED, {"churn_threshold": value})
    shown = f"{float(value):g}"
    assert str(err.value) == (
        f"Report retention_analysis parameter 'churn_threshold' is a probability, got {shown}: "
        f"{hint}. Nothing was run."
    )


def test_other_thresholds_and_probabilities_within_range_are_accepted() -> None:
    given = {"churn_threshold": "0.9", "revenue_threshold": "2500", "horizon": "120"}
    converted = coerce_parameters("retention_analysis", DECLARED, given)
    assert converted == {"churn_threshold": 0.9, "revenue_threshold": 2500.0, "horizon": 120}
    edges = coerce_parameters("r", DECLARED, {"churn_threshold": "1"})
    assert edges == {"churn_threshold": 1.0}


def test_the_retention_report_refuses_a_percentage_before_running(tmp_path: Path) -> None:
    (tmp_path / "notebooks").symlink_to(REPO / "notebooks", target_is_directory=True)
    settings = Settings.from_env(environ={"CRM_ML_HOME": str(tmp_path)})
    with pytest.raises(ValidationError, match=r"for 60 % write 0\.6\. Nothing was run\.$"):
        run_report(
            settings,
            "retention_analysis",
            as_of=date(2026, 1, 8),
            parameters={"churn_threshold": "60"},
        )
    assert not settings.reports_dir.exists()  # no staging folder, no failed notebook
