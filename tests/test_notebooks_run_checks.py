"""Report notebooks refuse bad list inputs and dates before they write to the store; customer 360.

Each run uses this module's tiny demo store, built by the ``settings`` fixture of
tests/test_notebooks.py. A run that fails on its channel, purpose, export
secret or date must leave the store as it was: no score, no segment saved or
changed, no snapshot, no tag applied (review 9b, M1 and L3; operations review).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import nbformat
import pytest
from models.synthetic import TINY, make_training_frame
from project_settings import project_settings
from sqlalchemy import func, select
from test_notebooks import AS_OF, _run
from test_notebooks import settings as settings  # the demo project, as a fixture

from crm_ml.config import Settings
from crm_ml.models.training import train_model
from crm_ml.reporting import ReportFailedError, list_reports, run_report
from crm_ml.segments import segment_show_command
from crm_ml.store import Store
from crm_ml.store.schema import (
    CustomerTag,
    ExportLog,
    Score,
    SegmentChange,
    SegmentDefinition,
    SegmentMember,
    SegmentSnapshot,
    Tier,
    TierChange,
)
from crm_ml.tags import tags_apply_command

CHURN_LIST = "retention_churn_risk"


def _rows(settings: Settings) -> dict[str, int]:
    """Row counts of every table a report run writes to before it exports."""
    tables = (
        Score,
        CustomerTag,
        SegmentDefinition,
        SegmentChange,
        SegmentSnapshot,
        SegmentMember,
        ExportLog,
    )
    store = Store(settings.database_url)
    with store.connect() as conn:
        counts = {
            t.__tablename__: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables
        }
    store.dispose()
    return counts


def _shown(settings: Settings, name: str) -> str:
    store = Store(settings.database_url)
    try:
        return segment_show_command(store, name)
    finally:
        store.dispose()


def _failed_cell(settings: Settings) -> str:
    """The source of the cell that raised, in the newest failed notebook."""
    newest = max(
        (settings.reports_dir / "_failed").glob("*.ipynb"), key=lambda p: p.stat().st_mtime
    )
    cells = nbformat.read(newest, as_version=4).cells
    (failed,) = [
        c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    return str(failed.source)


def test_a_bad_channel_leaves_the_retention_segment_as_it_was(settings: Settings) -> None:
    _run(settings, "retention_analysis")  # v1: p_churn >= 0.6, snapshot and list published
    shown, before = _shown(settings, CHURN_LIST), _rows(settings)
    with pytest.raises(ReportFailedError, match=r"ValidationError: Unknown channel 'fax'"):
        run_report(
            settings,
            "retention_analysis",
            as_of=AS_OF,
            parameters={"churn_threshold": "0.9", "channel": "fax"},
        )
    assert _shown(settings, CHURN_LIST) == shown  # still v1, p_churn >= 0.6, same sizes
    assert "rule: p_churn >= 0.6" in shown
    assert _rows(settings) == before
    assert "Settings.from_env()" in _failed_cell(settings)  # the setup cell: nothing else ran


def test_a_bad_period_stops_the_retention_report_in_its_setup_cell(settings: Settings) -> None:
    before = _rows(settings)
    with pytest.raises(ReportFailedError, match="ConfigError: freq='fortnight' is not a calendar"):
        run_report(settings, "retention_analysis", as_of=AS_OF, parameters={"period": "fortnight"})
    assert _rows(settings) == before
    assert "Settings.from_env()" in _failed_cell(settings)  # not minutes into the analysis


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"channel": "fax"}, r"ValidationError: Unknown channel 'fax'"),
        ({"purpose": "sales"}, r"ValidationError: Unknown purpose 'sales'"),
    ],
)
def test_segment_lists_checks_channel_and_purpose_before_applying_tags(
    settings: Settings, parameters: dict[str, str], error: str
) -> None:
    before = _rows(settings)
    with pytest.raises(ReportFailedError, match=error):
        run_report(settings, "segment_lists", as_of=AS_OF, parameters=parameters)
    assert _rows(settings) == before
    assert "Settings.from_env()" in _failed_cell(settings)


@pytest.mark.parametrize("report", ["segment_lists", "retention_analysis"])
def test_a_missing_export_secret_fails_before_anything_is_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, report: str
) -> None:
    monkeypatch.delenv("CRM_ML_EXPORT_SECRET")  # the kernel inherits the environment
    before = _rows(settings)
    with pytest.raises(
        ReportFailedError, match=r"ConfigError: Exporting a list needs a secret key"
    ):
        run_report(settings, report, as_of=AS_OF)
    assert _rows(settings) == before
    assert "Settings.from_env()" in _failed_cell(settings)


def _scored_on(settings: Settings, day: date) -> int:
    store = Store(settings.database_url)
    with store.connect() as conn:
        on = datetime.combine(day, datetime.min.time())
        count = conn.execute(select(func.count()).where(Score.as_of == on)).scalar_one()
    store.dispose()
    return int(count)


def test_segment_lists_refuses_a_date_before_the_last_tag_run_before_scoring_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A churn champion, in a registry of this test's own (the kernel inherits the
    # environment), so a run that got past its setup cell would score the earlier date.
    own = project_settings(tmp_path)
    train_model("churn", make_training_frame(n=400), own, horizon_days=90,
                model_params=TINY)  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own.mlflow_tracking_uri)
    store = Store(settings.database_url)
    tags_apply_command(store, AS_OF)  # the night of AS_OF has run
    store.dispose()
    earlier, before = date(2024, 9, 24), _rows(settings)
    with pytest.raises(ReportFailedError) as failed:
        run_report(settings, "segment_lists", as_of=earlier)
    message = str(failed.value)
    assert re.search(
        r"ValidationError: Tag '\w+' already has history up to 2024-10-01 00:00, "
        r"after as_of 2024-09-24 00:00: tags are applied forward in time",
        message,
    )
    assert '`crm-ml tags undo --as-of 2024-10-01 --reason "…"`' in message
    assert "Settings.from_env()" in _failed_cell(settings)  # the setup cell: nothing else ran
    assert _scored_on(settings, earlier) == 0
    assert _rows(settings) == before


def test_customer_360_reports_for_two_customers_are_both_kept(settings: Settings) -> None:
    store = Store(settings.database_url)
    with store.connect() as conn:
        labels = set(conn.execute(select(Tier.label)).scalars())
        changed = select(TierChange.customer_id).where(TierChange.changed_at < datetime(2024, 9, 1))
        first, second = conn.execute(changed.distinct().order_by("customer_id").limit(2)).scalars()
    store.dispose()
    one, html = _run(settings, "customer_360", customer_id=first)
    two, _ = _run(settings, "customer_360", customer_id=second)
    assert one.html.name == f"customer_360-{first}.html" and one.html.exists()
    assert two.html.name == f"customer_360-{second}.html"
    assert first in one.html.read_text(encoding="utf-8")  # not overwritten by the second
    listed = {name for _, name, _ in list_reports(settings)}
    assert {f"customer_360-{first}", f"customer_360-{second}"} <= listed
    # The Chinese view names tiers as the report tables do (钻石会员, not diamond).
    assert labels and any(label in html for label in labels)
