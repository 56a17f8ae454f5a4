"""undo_apply_tags: withdrawing a rule/model tag run applied at a mistaken date."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from customer_helpers import D1, D2, D3, features

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.store import Store
from crm_ml.tags import (
    TagDefinition,
    apply_tags,
    customers_with_tag,
    save_tag_definition,
    tag_customers,
    tag_history,
)
from crm_ml.tags.undo import tags_undo_command, undo_apply_tags

DORMANT = TagDefinition("dormant", "沉睡客户", "lifecycle", rule="recency_days > 60")
BIG = TagDefinition("big_spender", "大额", "value", rule="revenue_365d >= 1000")
VIP = TagDefinition("vip", "VIP客户", "manual_list", kind="manual")
MISTAKE = datetime(2025, 2, 1)  # typed for 2024-07-01 (D2)


def at_d1() -> pd.DataFrame:
    """c1 and c3 dormant; c1 and c4 big spenders."""
    return features(
        recency_days=[90.0, 10.0, 70.0, 5.0, None], revenue_365d=[2000.0, 50.0, 10.0, 3000.0, 0.0]
    )


def later() -> pd.DataFrame:
    """c1 bought again, c2 lapsed, c3 stays dormant; c2 became a big spender."""
    return features(
        recency_days=[3.0, 80.0, 100.0, 35.0, None],
        revenue_365d=[2100.0, 1500.0, 10.0, 3000.0, 0.0],
    )


def intervals(store: Store, tag: str) -> list[tuple[str, datetime, datetime | None]]:
    history = tag_history(store, tag=tag)
    rows = history[["customer_id", "valid_from", "valid_to"]].itertuples(index=False, name=None)
    return [(c, f.to_pydatetime(), None if pd.isna(t) else t.to_pydatetime()) for c, f, t in rows]


@pytest.fixture
def mistaken(five: Store) -> Store:
    """Tags applied at D1, then again at a mistyped date, MISTAKE, seven months on."""
    apply_tags(five, at_d1(), D1, definitions=[DORMANT, BIG])
    apply_tags(five, later(), MISTAKE, definitions=[DORMANT, BIG])
    return five


def test_undo_takes_the_history_back_to_before_the_run(mistaken: Store) -> None:
    before = [("c1", D1, MISTAKE), ("c2", MISTAKE, None), ("c3", D1, None)]
    assert intervals(mistaken, "dormant") == before

    summary = undo_apply_tags(mistaken, MISTAKE, actor="li", reason="日期输错")

    assert summary.to_dict("index") == {
        "big_spender": {"deleted": 1, "reopened": 0},
        "dormant": {"deleted": 1, "reopened": 1},
    }
    assert intervals(mistaken, "dormant") == [("c1", D1, None), ("c3", D1, None)]
    assert intervals(mistaken, "big_spender") == [("c1", D1, None), ("c4", D1, None)]
    reasons = tag_history(mistaken, tag="dormant").set_index("customer_id")["reason"]
    assert reasons.to_dict() == {
        "c1": "rule v1 | end at 2025-02-01 00:00 withdrawn by li: 日期输错",
        "c3": "rule v1",
    }
    assert list(customers_with_tag(mistaken, "dormant", MISTAKE)) == ["c1", "c3"]


def test_after_the_undo_the_run_for_the_right_date_is_accepted(mistaken: Store) -> None:
    with pytest.raises(ValidationError, match="already has history up to 2025-02-01 00:00"):
        apply_tags(mistaken, later(), D2, definitions=[DORMANT, BIG])
    undo_apply_tags(mistaken, MISTAKE, actor="li", reason="日期输错")

    summary = apply_tags(mistaken, later(), D2, definitions=[DORMANT, BIG])

    assert summary.loc["dormant", ["members", "added", "removed"]].tolist() == [2, 1, 1]
    assert intervals(mistaken, "dormant") == [("c1", D1, D2), ("c2", D2, None), ("c3", D1, None)]


def test_the_forward_only_refusal_names_the_undo_command(mistaken: Store) -> None:
    with pytest.raises(ValidationError) as info:
        apply_tags(mistaken, later(), D2, definitions=[DORMANT])
    message = str(info.value)
    assert "expected a date from 2025-02-01 on" in message
    assert '`crm-ml tags undo --as-of 2025-02-01 --reason "…"`' in message
    assert "undo_apply_tags(store, as_of, actor=…, reason=…)" in message


def test_the_refusal_names_a_time_of_day_as_the_cli_reads_it(five: Store) -> None:
    evening = datetime(2025, 1, 31, 16, 0)  # midnight in Beijing
    apply_tags(five, at_d1(), evening, definitions=[DORMANT])
    with pytest.raises(ValidationError, match=r"crm-ml tags undo --as-of 2025-01-31T16:00 "):
        apply_tags(five, at_d1(), D2, definitions=[DORMANT])


def test_undo_is_refused_when_a_later_run_changed_tags_and_nothing_changes(
    mistaken: Store,
) -> None:
    before = tag_history(mistaken)
    with pytest.raises(ValidationError) as info:
        undo_apply_tags(mistaken, D1, actor="li", reason="x")
    message = str(info.value)
    assert "Cannot withdraw the rule and model tag run at 2024-06-01 00:00" in message
    assert (
        "recorded after it: at 2025-02-01 00:00 big_spender (1 opened), "
        "dormant (1 opened, 1 closed)" in message
    )
    assert "`crm-ml tags undo --as-of 2025-02-01" in message
    pd.testing.assert_frame_equal(tag_history(mistaken), before)


def test_a_membership_opened_at_the_run_and_closed_later_blocks_the_undo(five: Store) -> None:
    apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    apply_tags(five, later(), D2, definitions=[DORMANT])
    apply_tags(five, at_d1(), D3, definitions=[DORMANT])  # c2's D2 membership ends at D3
    with pytest.raises(
        ValidationError, match=r"at 2024-08-01 00:00 dormant \(1 opened, 1 closed\)"
    ):
        undo_apply_tags(five, D2, actor="li", reason="x")


def test_manual_tags_are_never_touched(mistaken: Store) -> None:
    save_tag_definition(mistaken, VIP)
    tag_customers(mistaken, "vip", ["c5"], at=MISTAKE, actor="wang", reason="门店推荐")
    tag_customers(mistaken, "vip", ["c4"], at=datetime(2025, 3, 1), actor="wang", reason="复核")

    summary = undo_apply_tags(mistaken, MISTAKE, actor="li", reason="日期输错")

    assert "vip" not in summary.index
    assert intervals(mistaken, "vip") == [
        ("c4", datetime(2025, 3, 1), None),
        ("c5", MISTAKE, None),
    ]


def test_undo_at_an_instant_without_a_run_says_which_instants_there_are(
    mistaken: Store,
) -> None:
    with pytest.raises(NotFoundError) as info:
        undo_apply_tags(mistaken, "2025-02-08", actor="li", reason="x")
    message = str(info.value)
    assert "No rule or model tag membership was opened or closed at 2025-02-08 00:00" in message
    assert "latest runs: 2025-02-01 00:00, 2024-06-01 00:00" in message


def test_undo_needs_an_actor_and_a_reason(mistaken: Store) -> None:
    with pytest.raises(ValidationError, match="needs an actor and a reason"):
        undo_apply_tags(mistaken, MISTAKE, actor="li", reason=" ")
    assert intervals(mistaken, "dormant")[1] == ("c2", MISTAKE, None)


def test_a_rerun_at_the_same_date_continues_a_membership_it_had_ended(five: Store) -> None:
    apply_tags(five, at_d1(), D1, definitions=[DORMANT])
    apply_tags(five, later(), D2, definitions=[DORMANT])  # ends c1's membership at D2
    again = apply_tags(five, at_d1(), D2, definitions=[DORMANT])  # a corrected re-run: c1 is back

    assert again.loc["dormant", ["members", "added", "removed"]].tolist() == [2, 1, 1]
    # As if the first D2 run never happened: one membership since D1, not two that touch.
    assert intervals(five, "dormant") == [("c1", D1, None), ("c3", D1, None)]


def test_the_command_prints_what_was_withdrawn_and_where_the_history_now_ends(
    mistaken: Store,
) -> None:
    text = tags_undo_command(mistaken, MISTAKE, actor="li", reason="日期输错")
    lines = text.splitlines()
    assert lines[0] == (
        "Withdrew the rule and model tag run at 2025-02-01 00:00: 2 tags, "
        "2 memberships it opened deleted, 1 it closed reopened."
    )
    assert lines[-1] == (
        "Rule and model tags now have history up to 2024-06-01 00:00: "
        "`crm-ml tags apply` accepts a date from 2024-06-01 on."
    )
    assert any(line.split() == ["dormant", "1", "1"] for line in lines)
