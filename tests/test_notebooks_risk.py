"""retention_analysis breaks revenue at risk down by the segments it is given (review 13a, H2).

Each run uses this module's tiny demo store, built by the ``settings`` fixture of
tests/test_notebooks.py. The tests run in file order: the first saves the segments.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from test_notebooks import AS_OF, _run
from test_notebooks import settings as settings  # the demo project, as a fixture

from crm_ml.config import Settings
from crm_ml.reporting import ReportFailedError, run_report
from crm_ml.segments import Segment, save_segment
from crm_ml.store import Store
from crm_ml.store.schema import SegmentDefinition, SegmentSnapshot

SCRATCH = "analyst_scratch"


def _segment_rows(settings: Settings) -> tuple[int, int]:
    store = Store(settings.database_url)
    with store.connect() as conn:
        counts = tuple(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (SegmentDefinition, SegmentSnapshot)
        )
    store.dispose()
    return counts  # type: ignore[return-value]


def test_an_analysts_saved_segment_stays_out_of_the_default_report(settings: Settings) -> None:
    store = Store(settings.database_url)
    for segment in (
        Segment("churn_winback", "p_churn >= 0.6", "流失挽回"),
        Segment(SCRATCH, "recency_days > 0", "test"),
    ):
        save_segment(store, segment, actor="analyst")
    store.dispose()

    _, html = _run(settings, "retention_analysis")

    assert "churn_winback" in html
    assert SCRATCH not in html
    # Templates segment_lists has not saved yet are named, not silently left out.
    assert "Not saved yet, so not shown: high_value_at_risk, points_reminder, reactivation" in html
    assert "占全部客户风险金额" in html  # the share's header, in the default zh


def test_a_segment_named_in_the_parameter_is_shown(settings: Settings) -> None:
    _, html = _run(settings, "retention_analysis", segments=[SCRATCH])

    assert SCRATCH in html
    assert "Not saved yet" not in html  # only the segment asked for, and it is saved


def test_an_unknown_segment_fails_before_anything_is_written(settings: Settings) -> None:
    before = _segment_rows(settings)
    with pytest.raises(ReportFailedError, match="No segment or template named 'churn_winbak'"):
        run_report(
            settings, "retention_analysis", as_of=AS_OF, parameters={"segments": ["churn_winbak"]}
        )
    assert _segment_rows(settings) == before
