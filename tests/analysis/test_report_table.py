"""Analysis tables as a report shows them: headers in its language, percentages, money (M6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml.analysis import (
    concentration_summary,
    report_table,
    response_uplift,
    revenue_at_risk,
    table_headers,
    tier_movement_summary,
    value_quadrant,
    value_quadrant_summary,
)
from crm_ml.analysis.headers import COLUMN_KINDS, GROUP_LABELS, TABLE_HEADERS
from crm_ml.analysis.lifecycle import LIFECYCLE_COLUMNS
from crm_ml.errors import ConfigError

RISK = pd.DataFrame(
    {
        "customer_id": ["c1", "c1", "c2", "c3"],
        "segment": ["VIP", "new", "VIP", "(none)"],
        "p_churn": [0.5, 0.5, 0.25, 0.9],
        "revenue_12m": [3000.0, 3000.0, 500.0, 0.0],
    }
).assign(revenue_at_risk=lambda f: f["p_churn"] * f["revenue_12m"])
CONTACTS = pd.DataFrame(
    {
        "campaign_id": ["k1"] * 4,
        "group": ["treatment", "treatment", "control", "control"],
        "responded": [True, False, False, False],
    }
)
TIERS = pd.DataFrame(
    [[0, 3, 0], [0, 5, 2], [0, 1, 4]],
    index=pd.Index(["(none)", "t1", "t2"], name="tier_a"),
    columns=pd.Index(["(none)", "t1", "t2"], name="tier_b"),
)


def test_the_risk_table_in_chinese():
    shown = report_table(revenue_at_risk(RISK, by="segment"), "zh")

    assert shown.columns.tolist() == [
        "客户数",
        "平均流失概率",
        "预计流失人数",
        "近12个月净消费额（¥）",
        "流失风险金额（¥）",
        "风险金额占本组消费额",
        "占全部客户风险金额",
    ]
    assert shown.index.name == "分群"
    assert shown.index.tolist() == ["VIP", "new", "（不在以上分群）"]
    # c1 (1,500 at risk) is in both segments: shares are of 1,625, each customer once.
    assert shown.loc["VIP"].tolist() == ["2", "37.5%", "0.8", "3,500", "1,625", "46.4%", "100.0%"]
    assert shown.loc["new", "占全部客户风险金额"] == "92.3%"
    assert shown.loc["（不在以上分群）", "风险金额占本组消费额"] == "—"  # no spend to be a share of


def test_the_risk_table_in_english_names_the_currency():
    shown = report_table(revenue_at_risk(RISK, by="segment"), "en", currency="USD")

    assert "Revenue at risk ($)" in shown.columns
    assert "Share of all customers' revenue at risk" in shown.columns
    assert shown.index.tolist() == ["VIP", "new", "(in none of these segments)"]


def test_the_frame_keeps_the_code_names_and_numbers():
    summary = revenue_at_risk(RISK, by="segment")
    report_table(summary, "zh")

    assert "share_of_total_at_risk" in summary.columns
    assert summary["share_of_total_at_risk"].dtype == "float64"


def test_an_owner_index_names_unassigned_customers():
    summary = pd.DataFrame(
        {"revenue_at_risk": [10.0, 5.0]},
        index=pd.MultiIndex.from_tuples(
            [("(unassigned)", ""), ("AM010", "罗经理")], names=["owner_id", "owner_name"]
        ),
    )
    shown = report_table(summary, "zh")

    assert shown.index.names == ["负责人编号", "负责人"]
    assert shown.index.tolist() == [("（未分配负责人）", ""), ("AM010", "罗经理")]


def test_a_sum_of_columns_is_named_by_their_headers():
    liability = pd.DataFrame({"points_balance": [100, 50], "points_outstanding": [80, 50]})
    shown = report_table(liability.sum().rename("points").to_frame(), "zh")

    assert shown.index.tolist() == ["积分余额", "有效积分"]
    assert shown["积分"].tolist() == ["150", "130"]


def test_uplift_is_in_percentage_points_and_flags_are_words():
    shown = report_table(response_uplift(CONTACTS), "zh")

    assert shown.loc["k1", "实验组响应率"] == "50.0%"
    assert shown.loc["k1", "响应率提升（百分点）"] == "+50.0"
    assert shown.loc["k1", "显著"] == "否"


def test_dates_and_text_keep_their_type():
    frame = pd.DataFrame(
        {"period_start": pd.to_datetime(["2025-01-01"]), "name": ["双11"], "other": [1.5]},
        index=pd.PeriodIndex(["2025-01"], freq="M", name="period"),
    )
    shown = report_table(frame, "en")

    assert shown["Start"].dtype == "datetime64[us]" or shown["Start"].dtype.kind == "M"
    assert shown.columns.tolist() == ["Start", "Name", "other"]  # no header: as it is
    assert shown["other"].tolist() == [1.5]
    assert shown.index.tolist() == [pd.Period("2025-01", freq="M")]


def test_an_unknown_language_is_refused():
    with pytest.raises(ConfigError, match="lang='fr' is not supported; use one of zh, en"):
        report_table(revenue_at_risk(RISK, by="segment"), "fr")


def test_both_languages_name_the_same_columns_and_groups():
    assert TABLE_HEADERS["zh"].keys() == TABLE_HEADERS["en"].keys()
    assert GROUP_LABELS["zh"].keys() == GROUP_LABELS["en"].keys()
    assert set(COLUMN_KINDS) <= set(TABLE_HEADERS["en"])


def test_every_column_of_the_retention_reports_tables_has_a_header():
    values = pd.DataFrame({"orders": [1, 3], "aov": [100.0, 50.0], "revenue": [100.0, 150.0]})
    tables = [
        revenue_at_risk(RISK, by="segment"),
        tier_movement_summary(TIERS),
        value_quadrant_summary(value_quadrant(values)),
        concentration_summary(values["revenue"]),
        response_uplift(CONTACTS),
        pd.DataFrame(columns=list(LIFECYCLE_COLUMNS), index=pd.Index([], name="period")),
    ]
    headers = table_headers("zh")
    for table in tables:
        named = [*table.columns, *table.index.names]
        assert [c for c in named if c not in headers] == []


def test_missing_numbers_read_as_a_dash():
    shown = report_table(pd.DataFrame({"churn_rate": [np.nan, 0.2]}), "en")

    assert shown["Churn rate"].tolist() == ["—", "20.0%"]
