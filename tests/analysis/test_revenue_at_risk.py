from __future__ import annotations

import pandas as pd
import pytest
from analysis_rows import order, refund, ts

from crm_ml.analysis import customer_risk, plot_revenue_at_risk, revenue_12m, revenue_at_risk
from crm_ml.errors import NotFoundError, ValidationError

AS_OF = "2024-07-01"


def score(model, as_of, customer_id, p):
    return {
        "model_name": model,
        "as_of": ts(as_of),
        "customer_id": customer_id,
        "model_version": "1",
        "probability": p,
        "band": "high" if p >= 0.5 else "low",
        "scored_at": ts(as_of),
    }


def owner(customer_id, owner_id, valid_from, valid_to=None):
    return {
        "customer_id": customer_id,
        "owner_id": owner_id,
        "owner_name": {"o1": "王芳", "o2": "李雷", "o3": "韩梅梅"}[owner_id],
        "valid_from": ts(valid_from),
        "valid_to": ts(valid_to) if valid_to else None,
    }


@pytest.fixture
def risk_store(store, insert):
    insert(
        "score",
        [
            score("crm-churn", "2024-06-01", "c1", 0.9),
            score("crm-churn", "2024-07-01", "c1", 0.5),  # the latest run at as_of
            score("crm-churn", "2024-07-01", "c2", 0.2),
            score("crm-churn", "2024-07-02", "c1", 0.99),  # after as_of
            score("crm-propensity", "2024-07-01", "c1", 0.7),  # another model
        ],
    )
    insert(
        "orders",
        [
            order("o1", "c1", "2023-06-30 23:59:59", 1000.0),  # before the 12 months
            order("o2", "c1", "2023-07-01 00:00", 100.0),
            order("o3", "c1", "2024-06-30", 200.0),
            order("o4", "c1", "2024-07-01 00:00", 5000.0),  # at as_of
            order("o5", "c2", "2024-01-01", 50.0),
        ],
    )
    insert(
        "tier_change",
        [
            {
                "customer_id": "c1",
                "changed_at": ts("2024-01-01"),
                "to_tier": "t2",
                "direction": "initial",
            },
            {
                "customer_id": "c2",
                "changed_at": ts("2024-07-01"),
                "to_tier": "t1",
                "direction": "initial",
            },
        ],
    )
    insert(
        "customer_owner",
        [
            owner("c1", "o1", "2024-01-01"),
            owner("c2", "o2", "2023-01-01", "2024-07-01"),  # ends at as_of: still in effect
            owner("c2", "o3", "2024-07-01"),  # starts at as_of: not yet
        ],
    )
    return store


def test_customer_risk_uses_latest_scores_and_12_month_revenue(risk_store):
    segments = pd.DataFrame({"customer_id": ["c1"], "segment": ["VIP"]})
    risk = customer_risk(risk_store, AS_OF, segments=segments)

    assert risk["customer_id"].tolist() == ["c1", "c2"]
    assert risk["p_churn"].tolist() == [0.5, 0.2]
    assert risk["score_as_of"].tolist() == [pd.Timestamp("2024-07-01")] * 2
    assert risk["revenue_12m"].tolist() == [300.0, 50.0]
    assert risk["revenue_at_risk"].tolist() == pytest.approx([150.0, 10.0])
    assert risk["tier"].tolist() == ["t2", "(none)"]
    assert risk["owner_id"].tolist() == ["o1", "o2"]
    assert risk["owner_name"].tolist() == ["王芳", "李雷"]
    assert risk["segment"].tolist() == ["VIP", "(none)"]


def test_revenue_at_risk_by_tier_and_owner(risk_store):
    risk = customer_risk(risk_store, AS_OF)
    by_tier = revenue_at_risk(risk, by="tier")

    assert by_tier.index.tolist() == ["t2", "(none)"]
    assert by_tier["customers"].tolist() == [1, 1]
    assert by_tier["expected_churners"].tolist() == pytest.approx([0.5, 0.2])
    assert by_tier["revenue_12m"].tolist() == [300.0, 50.0]
    assert by_tier["revenue_at_risk"].tolist() == pytest.approx([150.0, 10.0])
    assert by_tier["revenue_at_risk_rate"].tolist() == pytest.approx([0.5, 0.2])
    assert by_tier["share_of_total_at_risk"].tolist() == pytest.approx([150 / 160, 10 / 160])

    by_owner = revenue_at_risk(risk, by="owner")
    assert by_owner.index.names == ["owner_id", "owner_name"]
    assert by_owner.index.tolist() == [("o1", "王芳"), ("o2", "李雷")]


def test_segments_as_a_series_and_overlapping(risk_store):
    segments = pd.Series(["VIP", "new"], index=pd.Index(["c1", "c1"], name="customer_id"))
    risk = customer_risk(risk_store, AS_OF, segments=segments)
    summary = revenue_at_risk(risk, by="segment")

    assert summary.loc["VIP", "revenue_at_risk"] == pytest.approx(150.0)
    assert summary.loc["new", "revenue_at_risk"] == pytest.approx(150.0)
    assert summary.loc["(none)", "customers"] == 1


def test_segment_shares_are_of_the_distinct_customers_revenue_at_risk(risk_store):
    # c1 (150 at risk) is in both segments, c2 (10) in one: 160 at risk in all, not 310 (H2).
    segments = pd.DataFrame({"customer_id": ["c1", "c1", "c2"], "segment": ["VIP", "new", "new"]})
    summary = revenue_at_risk(customer_risk(risk_store, AS_OF, segments=segments), by="segment")

    assert summary.index.tolist() == ["new", "VIP"]
    assert summary["revenue_at_risk"].tolist() == pytest.approx([160.0, 150.0])
    assert summary["share_of_total_at_risk"].tolist() == pytest.approx([1.0, 150 / 160])
    assert summary["revenue_at_risk_rate"].tolist() == pytest.approx([160 / 350, 0.5])


def test_a_risk_frame_by_segment_needs_customer_ids():
    risk = pd.DataFrame(
        {"segment": ["VIP"], "p_churn": [0.5], "revenue_12m": [300.0], "revenue_at_risk": [150.0]}
    )
    with pytest.raises(ValidationError, match=r"by segment is missing column\(s\) customer_id"):
        revenue_at_risk(risk, by="segment")


def test_a_score_dated_at_as_of_is_used_and_none_before_it_fails(risk_store):
    # score.as_of is the cutoff of the data a score used, so a run dated at as_of is in.
    first_run = customer_risk(risk_store, "2024-06-01")
    assert first_run["p_churn"].tolist() == [0.9]
    with pytest.raises(NotFoundError, match="No 'crm-churn' scores at or before 2024-05-31"):
        customer_risk(risk_store, "2024-05-31 23:59:59")


def test_grouping_by_segment_needs_segments(risk_store):
    with pytest.raises(ValidationError, match="Pass segments="):
        revenue_at_risk(customer_risk(risk_store, AS_OF), by="segment")


def test_a_per_segment_frame_is_grouped_only_by_segment(risk_store):
    # c1 is in two segments: grouped by tier it would count twice (A6).
    segments = pd.Series(["VIP", "new"], index=pd.Index(["c1", "c1"], name="customer_id"))
    risk = customer_risk(risk_store, AS_OF, segments=segments)

    with pytest.raises(ValidationError, match=r"one row per customer and segment.*1 of its rows"):
        revenue_at_risk(risk, by="tier")
    with pytest.raises(ValidationError, match=r"without segments= by \['owner_id', 'owner_name'\]"):
        revenue_at_risk(risk, by="owner")
    by_segment_and_tier = revenue_at_risk(risk, by=["segment", "tier"])
    assert by_segment_and_tier["customers"].sum() == 3  # c1 once per segment, c2 in none


def test_revenue_is_net_of_refunds_known_at_as_of(risk_store, insert):
    insert(
        "order_item",
        [
            refund("o3", 200.0, "2024-06-30 12:00", 80.0),  # before as_of: deducted
            refund("o5", 50.0, "2024-07-01 00:00", 50.0),  # at as_of: not known yet
        ],
    )
    risk = customer_risk(risk_store, AS_OF)

    assert risk.set_index("customer_id")["revenue_12m"].to_dict() == {"c1": 220.0, "c2": 50.0}
    with risk_store.connect() as conn:
        assert revenue_12m(conn, ts(AS_OF)).to_dict() == {"c1": 220.0, "c2": 50.0}


def test_an_unassigned_customer_has_an_empty_owner_name(risk_store, insert):
    insert("score", [score("crm-churn", "2024-07-01", "c3", 0.4)])  # c3 has no owner
    by_owner = revenue_at_risk(customer_risk(risk_store, AS_OF), by="owner")

    assert by_owner.index.tolist() == [("o1", "王芳"), ("o2", "李雷"), ("(unassigned)", "")]


def test_the_owner_chart_names_unassigned_customers_without_nan():
    summary = pd.DataFrame(
        {"revenue_at_risk": [10.0, 5.0]},
        index=pd.MultiIndex.from_tuples(
            [("(unassigned)", ""), ("AM010", "罗经理")], names=["owner_id", "owner_name"]
        ),
    )
    ax = plot_revenue_at_risk(summary).axes[0]

    assert [t.get_text() for t in ax.get_yticklabels()] == ["AM010 / 罗经理", "(unassigned)"]


def _owner_summary(rows: int = 2) -> pd.DataFrame:
    groups = [("(unassigned)", ""), ("AM010", "罗经理")] + [(f"AM{i:03d}", "") for i in range(rows)]
    return pd.DataFrame(
        {"revenue_at_risk": [float(100 - i) for i in range(len(groups))]},
        index=pd.MultiIndex.from_tuples(groups, names=["owner_id", "owner_name"]),
    ).head(rows)


def test_the_owner_chart_in_chinese_names_its_currency_and_unassigned_customers():
    ax = plot_revenue_at_risk(_owner_summary(), lang="zh").axes[0]

    assert ax.get_xlabel() == "流失风险金额（¥）"
    assert ax.get_title() == "各负责人流失风险金额"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["AM010 / 罗经理", "（未分配负责人）"]
    assert [t.get_text() for t in ax.texts] == ["99", "100"]  # each bar's amount


def test_the_chart_takes_the_settings_currency_and_says_when_groups_are_left_out():
    ax = plot_revenue_at_risk(_owner_summary(5), top=3, currency="USD").axes[0]

    assert ax.get_xlabel() == "Revenue at risk ($)"
    assert ax.get_title() == "Revenue at risk by account manager (top 3)"
    assert len(ax.get_yticklabels()) == 3
