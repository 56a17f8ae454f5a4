"""``crm-ml tiers apply``: a date outside the store's data is refused before any write."""

import pytest
from project_settings import cli_project, import_files
from sqlalchemy import func, select

from crm_ml.cli import main
from crm_ml.store import Store
from crm_ml.store.schema import TierChange

FILES = {
    "tier.csv": "tier_id,name,level,min_spend_12m\nT0,classic,0,0\nT1,gold,1,1000\n",
    "customer.csv": "customer_id,name,is_member,created_at\nC1,张三,true,2023-01-01\n"
    "C2,李四,true,2023-01-01\n",
    # Shanghai time: the order is at 2024-02-29 16:00 UTC.
    "orders.csv": "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
    "O1,C1,2024-03-01,offline,1500,1500\n",
}


@pytest.fixture
def project(tmp_path, monkeypatch, capsys):
    """A project whose store holds two members, one order and one recorded tier review."""
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    import_files(tmp_path, FILES)
    assert main(["tiers", "apply", "--as-of", "2024-07-01"]) == 0
    capsys.readouterr()
    return tmp_path


def _changes(project) -> int:
    store = Store(f"duckdb:///{project / 'data' / 'crm.duckdb'}")
    try:
        with store.connect() as conn:
            return conn.execute(select(func.count()).select_from(TierChange)).scalar_one()
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2062-01-01", "after the last recorded order (2024-02-29 16:00 UTC)"),
        ("2025-03-01", "Expected a date by 2025-02-28 (12 months after it)"),
        ("2022-06-30", "before the store's data starts (first customer or order 2022-12-31 16:00"),
    ],
)
def test_a_date_outside_the_data_is_refused_in_one_line(project, capsys, as_of, expected):
    assert _changes(project) == 2
    assert main(["tiers", "apply", "--as-of", as_of]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "crm-ml: error: Cannot record tier changes at " in captured.err
    assert captured.err.count("\n") == 1 and not captured.out
    assert _changes(project) == 2


def test_a_review_months_after_the_last_order_still_runs(project, capsys):
    # 11 months after the last order (more than the 90 days `score` allows), the
    # order is still in the 12-month window: C1 keeps gold, C2 stays classic.
    assert main(["tiers", "apply", "--as-of", "2025-02-01"]) == 0
    assert "Tier changes recorded at 2025-02-01: 0" in capsys.readouterr().out
    assert main(["tiers", "apply", "--as-of", "2025-02-28"]) == 0  # the last day it is
    assert _changes(project) == 2
