"""segment_lists and segment_explorer with the parameters review 6 found failing.

Each run uses the module's tiny demo store, built by the ``settings`` fixture of
tests/test_notebooks.py. The tests run in file order, and the first one needs a
store whose tags were never applied.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from test_notebooks import AS_OF, _run
from test_notebooks import settings as settings  # the demo project, as a fixture

from crm_ml.config import Settings
from crm_ml.reporting import ReportFailedError, run_report
from crm_ml.store import Store
from crm_ml.store.schema import CustomerTag, SegmentDefinition, TagDefinition
from crm_ml.tags.library import install_library


def _rows(settings: Settings) -> tuple[int, ...]:
    store = Store(settings.database_url)
    with store.connect() as conn:
        counts = tuple(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (TagDefinition, CustomerTag, SegmentDefinition)
        )
    store.dispose()
    return counts


def test_segment_lists_checks_segment_names_before_writing(settings: Settings) -> None:
    before = _rows(settings)
    with pytest.raises(ReportFailedError, match="No segment or template named 'churn_winbak'"):
        run_report(
            settings,
            "segment_lists",
            as_of=AS_OF,
            parameters={"segments": ["points_reminder", "churn_winbak"]},
        )
    assert _rows(settings) == before  # no tag history, no template saved


def test_segment_lists_takes_a_template_name(settings: Settings) -> None:
    report, html = _run(settings, "segment_lists", segments=["category_prospects"])
    assert "maternity_baby_prospects" in html
    assert {p.name.split("_20241001_")[0] for p in report.files} == {"maternity_baby_prospects"}


def test_segment_explorer_names_an_unknown_tag(settings: Settings) -> None:
    store = Store(settings.database_url)
    install_library(store)  # the tags to suggest, without relying on an earlier test's run
    store.dispose()
    with pytest.raises(ReportFailedError, match=r"Unknown tag 'high_valeu'\. Did you mean"):
        _run(settings, "segment_explorer", tags=["high_valeu"])
