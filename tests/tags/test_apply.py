"""apply_tags: history with valid_from/valid_to, back-testing, forward-only, dependencies."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from customer_helpers import D1, D2, D3, features

from crm_ml.erasure import erase_customer
from crm_ml.errors import RuleError, ValidationError
from crm_ml.store import Store
from crm_ml.store.merge import merge_customers
from crm_ml.store.purges import record_purge
from crm_ml.tags import (
    TagDefinition,
    apply_tags,
    check_apply_date,
    customers_with_tag,
    evaluate_tags,
    save_tag_definition,
    tag_customers,
    tag_history,
    tag_sizes,
)
from crm_ml.tags import apply as tag_apply

DORMANT = TagDefinition("dormant", "沉睡客户", "lifecycle", rule="recency_days > 60")
BIG = TagDefinition("big_spender", "大额", "value", rule="revenue_365d >= 1000")
BIG_DORMANT = TagDefinition(
    "big_dormant", "高价值沉睡", "value", rule='tag("dormant") and tag("big_spender")'
)


def at_d1() -> pd.DataFrame:
    return features(
        recency_days=[90.0, 10.0, 70.0, 5.0, None], revenue_365d=[2000.0, 50.0, 10.0, 3000.0, 0.0]
    )


def at_d2() -> pd.DataFrame:
    # c1 bought again (no longer dormant), c2 lapsed, c3 stays dormant.
    return features(
        recency_days=[3.0, 80.0, 100.0, 35.0, None], revenue_365d=[2100.0, 50.0, 10.0, 3000.0, 0.0]
    )


def test_history_opens_and_closes_memberships(five: Store) -> None:
    first = apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    assert first.loc["dormant"].tolist() == [1, 2, 2, 0]
    second = apply_tags(five, at_d2(), D2, definitions=[DORMANT])
    assert second.loc["dormant", ["members", "added", "removed"]].tolist() == [2, 1, 1]
    history = tag_history(five, tag="dormant")
    rows = history[["customer_id", "valid_from", "valid_to"]].itertuples(index=False, name=None)
    assert [(c, f, None if pd.isna(t) else t) for c, f, t in rows] == [
        ("c1", pd.Timestamp(D1), pd.Timestamp(D2)),
        ("c2", pd.Timestamp(D2), None),
        ("c3", pd.Timestamp(D1), None),
    ]
    assert set(history["source"]) == {"rule"}


def test_who_had_the_tag_on_an_earlier_date(five: Store) -> None:
    apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    apply_tags(five, at_d2(), D2, definitions=[DORMANT])
    assert list(customers_with_tag(five, "dormant", D1)) == ["c1", "c3"]
    assert list(customers_with_tag(five, "dormant", pd.Timestamp("2024-06-15"))) == ["c1", "c3"]
    assert list(customers_with_tag(five, "dormant", D2)) == ["c2", "c3"]
    assert list(customers_with_tag(five, "dormant", "2024-05-31")) == []
    sizes = tag_sizes(five, ["dormant"], [D1, D2, D3])
    assert sizes["dormant"].tolist() == [2, 2, 2]


def test_backtest_a_new_rule_on_past_features_writes_nothing(five: Store) -> None:
    apply_tags(five, at_d2(), D2, definitions=[DORMANT])
    stricter = TagDefinition("dormant", "沉睡客户", rule="recency_days > 80")
    past = evaluate_tags(five, at_d1(), D1, definitions=[stricter])
    assert list(past["dormant"]) == ["c1"]
    assert len(tag_history(five, tag="dormant")) == 2


def test_rerun_at_same_date_is_idempotent_and_corrects(five: Store) -> None:
    apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    again = apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    assert again.loc["dormant", ["added", "removed"]].tolist() == [0, 0]
    corrected = at_d1().assign(recency_days=[90.0, 10.0, 20.0, 5.0, None])
    apply_tags(five, corrected, D1, definitions=[DORMANT])
    history = tag_history(five, tag="dormant")
    assert history["customer_id"].tolist() == ["c1"]  # c3's same-day interval was removed


def test_applying_backwards_in_time_is_refused(five: Store) -> None:
    apply_tags(five, at_d1(), D2, definitions=[DORMANT])
    with pytest.raises(ValidationError, match="tags are applied forward in time"):
        apply_tags(five, at_d1(), D1, definitions=[DORMANT])


def test_the_date_check_counts_rule_and_model_history_only_and_writes_nothing(
    five: Store,
) -> None:
    # What a report's setup cell calls before it scores the date (segment_lists).
    save_tag_definition(five, TagDefinition("vip", "VIP客户", kind="manual"))
    apply_tags(five, at_d1(), D2, definitions=[DORMANT])
    tag_customers(five, "vip", ["c1"], at=D3, actor="li.na", reason="门店推荐")
    before = tag_history(five)
    check_apply_date(five, D2)  # a re-run of the same night; vip's manual D3 does not count
    check_apply_date(five, D3)
    check_apply_date(five, D1, names=["big_spender"])  # no history yet
    with pytest.raises(ValidationError) as info:
        check_apply_date(five, D1)
    message = str(info.value)
    assert message.startswith(
        "Tag 'dormant' already has history up to 2024-07-01 00:00, after as_of 2024-06-01 00:00: "
        "tags are applied forward in time, so expected a date from 2024-07-01 on."
    )
    assert '`crm-ml tags undo --as-of 2024-07-01 --reason "…"`' in message
    pd.testing.assert_frame_equal(tag_history(five), before)


def test_a_date_a_retention_purge_removed_is_not_tagged_again(five: Store) -> None:
    # big_spender has never run, so the forward-only check alone would let D1 through.
    with five.begin() as conn:
        record_purge(conn, datetime(2024, 9, 1), D2, {"customer_tag": 4}, actor="dpo", reason="R-7")
    with pytest.raises(ValidationError, match=(
        r"Cannot make tag history as of 2024-06-01: a retention purge on 2024-09-01 00:00 UTC by "
        r"dpo \(R-7\) deleted everything dated before 2024-07-01 00:00"
    )):  # fmt: skip
        apply_tags(five, at_d1(), D1, definitions=[BIG])
    assert tag_history(five).empty
    assert apply_tags(five, at_d2(), D2, definitions=[BIG]).loc["big_spender", "members"] == 2


def test_a_purge_committed_while_the_rules_run_stops_the_write(
    five: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluating = tag_apply._members

    def purged_meanwhile(*args, **kwargs):
        members = evaluating(*args, **kwargs)  # after the date was checked, before the write
        with five.begin() as conn:
            record_purge(
                conn, datetime(2024, 9, 1), D2, {"customer_tag": 0}, actor="dpo", reason="R-8"
            )
        return members

    monkeypatch.setattr(tag_apply, "_members", purged_meanwhile)
    with pytest.raises(ValidationError, match="Cannot make tag history as of 2024-06-01"):
        apply_tags(five, at_d1(), D1, definitions=[BIG])
    assert tag_history(five).empty


def test_tags_using_tags_are_computed_in_order(five: Store) -> None:
    summary = apply_tags(five, at_d1(), D1, definitions=[BIG_DORMANT, DORMANT, BIG])
    assert summary.loc["big_dormant", "members"] == 1
    assert list(customers_with_tag(five, "big_dormant", D1)) == ["c1"]


def test_rule_version_bumps_when_rule_changes(five: Store) -> None:
    apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    changed = TagDefinition("dormant", "沉睡客户", "lifecycle", rule="recency_days > 75")
    summary = apply_tags(five, at_d2(), D2, definitions=[changed])
    assert summary.loc["dormant", "version"] == 2
    reasons = tag_history(five, tag="dormant").set_index("customer_id")["reason"]
    assert reasons["c2"] == "rule v2" and reasons["c3"] == "rule v1"


def test_cycles_and_bad_rules_are_rejected_before_writing(five: Store) -> None:
    a = TagDefinition("a_tag", "A", rule='tag("b_tag") and recency_days > 1')
    b = TagDefinition("b_tag", "B", rule='tag("a_tag")')
    with pytest.raises(RuleError, match="cycle"):
        apply_tags(five, at_d1(), D1, definitions=[a, b])
    with pytest.raises(RuleError, match="Did you mean 'recency_days'"):
        apply_tags(five, at_d1(), D1, definitions=[TagDefinition("x", "X", rule="recency > 1")])
    assert tag_history(five).empty


def test_model_tags_read_scores_from_the_store(five: Store) -> None:
    from datetime import datetime

    from sqlalchemy import insert

    from crm_ml.store.schema import Score

    with five.begin() as conn:
        conn.execute(
            insert(Score),
            [
                {
                    "model_name": "crm-churn",
                    "as_of": datetime(2024, 5, 31),
                    "customer_id": c,
                    "model_version": "3",
                    "probability": p,
                    "band": "high" if p >= 0.6 else "low",
                    "reasons": "[]",
                    "scored_at": datetime(2024, 5, 31),
                }
                for c, p in [("c1", 0.9), ("c2", 0.2), ("c3", 0.65)]
            ],
        )
    risky = TagDefinition("churn_risk_high", "流失风险高", "risk", "model", rule="p_churn >= 0.6")
    apply_tags(five, at_d1(), D1, definitions=[risky])
    assert list(customers_with_tag(five, "churn_risk_high", D1)) == ["c1", "c3"]
    assert set(tag_history(five, tag="churn_risk_high")["source"]) == {"model"}


def test_tags_apply_before_the_history_is_refused_first_with_cli_and_python_advice(
    five: Store, caplog
) -> None:
    from crm_ml.tags import tags_apply_command

    churny = TagDefinition("churny", "流失风险", "risk", kind="model", rule="p_churn >= 0.7")
    apply_tags(five, at_d1(), D2, definitions=[DORMANT, churny])
    caplog.clear()
    with pytest.raises(ValidationError) as info:
        tags_apply_command(five, D1, features=at_d1())
    message = str(info.value)
    assert "expected a date from 2024-07-01 on" in message
    assert "`crm-ml tags list --on 2024-06-01`" in message and "evaluate_tags(" in message
    assert not [r for r in caplog.records if "scores up to" in r.getMessage()]


def test_an_erased_person_gets_no_tag_on_the_next_run_and_the_run_says_so(five: Store) -> None:
    from crm_ml.tags import tags_apply_command

    apply_tags(five, at_d1(), D1, definitions=[DORMANT, BIG])
    assert list(customers_with_tag(five, "big_spender", D1)) == ["c1", "c4"]
    # c5, an old card record, was merged into c4; the person asks for erasure via c5.
    merge = pd.DataFrame({"merged_id": ["c5"], "surviving_id": ["c4"]})
    merge_customers(five, merge, at=D1, actor="steward")
    erase_customer(five, "c5", actor="合规官", reason="ticket DPO-17")

    text = tags_apply_command(five, D2, features=at_d2())

    assert list(customers_with_tag(five, "big_spender", D2)) == ["c1"]
    assert tag_history(five).query("customer_id in ['c4', 'c5']").empty
    assert text.endswith(
        "\n2 customers erased on request were left out of the rule and model tags: nothing more "
        "is computed about an erased person (`crm-ml customers erase`), whose orders and points "
        "stay only for accounting."
    )
    assert evaluate_tags(five, at_d2(), D2, definitions=[BIG])["big_spender"].tolist() == ["c1"]
