"""A tag held by a merged-away record counts for the person, as the features do.

The store here: ``s`` survives two records merged by a source system, not by
``merge_customers`` (which re-keys tags itself), so their tags stay on the old
ids: ``m`` (``customer.merged_into = 's'``) and ``k`` (a ``customer_merge`` row
``k -> m``, a chain to ``s``). ``o`` is another person.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from customer_helpers import D1, D2, D3, T0
from sqlalchemy import insert

from crm_ml.rules import compile_rule, evaluate_rule
from crm_ml.segments import tag_flags
from crm_ml.store import Store
from crm_ml.store.schema import Customer, CustomerMerge, CustomerTag
from crm_ml.tags import (
    TagDefinition,
    apply_tags,
    customers_with_tag,
    save_tag_definition,
    tag_changes,
    tag_customers,
    tag_history,
    tag_sizes,
    tag_vocabulary,
    untag_customers,
)

VIP = TagDefinition("vip", "VIP客户", "manual_list", kind="manual", owner="crm-team")
VIP_RULE = TagDefinition("vip_rule", "VIP (rule)", "value", rule='tag("vip")')
PEOPLE = pd.Index(["o", "s"], name="customer_id", dtype="str")


def _customer(cid: str, merged_into: str | None = None) -> dict:
    return {
        "customer_id": cid,
        "created_at": T0,
        "status": "merged" if merged_into else "active",
        "merged_into": merged_into,
        "is_member": True,
    }


@pytest.fixture
def merged(store: Store) -> Store:
    """``m`` and ``k`` merged into ``s`` by imported merges; ``vip`` on ``m``, ``k`` and ``o``."""
    with store.begin() as conn:
        conn.execute(
            insert(Customer),
            [_customer("s"), _customer("m", "s"), _customer("k", "s"), _customer("o")],
        )
        conn.execute(
            insert(CustomerMerge),
            [{"merged_id": "k", "surviving_id": "m", "merged_at": T0, "reason": "dup"}],
        )
    save_tag_definition(store, VIP)
    tag_customers(store, "vip", ["m", "k", "o"], at=D1, actor="li.na", reason="门店推荐")
    return store


def test_who_has_a_tag_is_answered_by_person(merged: Store) -> None:
    assert list(customers_with_tag(merged, "vip", D1)) == ["o", "s"]
    assert tag_sizes(merged, ["vip"], [D1])["vip"].tolist() == [2]
    assert tag_flags(merged, ["vip"], D1, PEOPLE)["vip"].tolist() == [True, True]
    frame = pd.DataFrame(index=PEOPLE)
    rule = compile_rule('tag("vip")', tag_vocabulary(merged, frame))
    assert list(evaluate_rule(merged, rule, frame, D1)) == ["o", "s"]
    added = tag_changes(merged, "vip", None, D1)
    assert added.values.tolist() == [["o", "added"], ["s", "added"]]


def test_the_history_and_manual_changes_stay_on_the_records(merged: Store) -> None:
    # Removing the tag from one old record leaves the person tagged through the other.
    removed = untag_customers(merged, "vip", ["m"], at=D2, actor="wang", reason="复核")
    assert removed["action"].tolist() == ["removed"]
    assert list(customers_with_tag(merged, "vip", D2)) == ["o", "s"]
    untag_customers(merged, "vip", ["k"], at=D3, actor="wang", reason="复核")
    assert list(customers_with_tag(merged, "vip", D3)) == ["o"]
    assert tag_changes(merged, "vip", D1, D3).values.tolist() == [["s", "removed"]]
    history = tag_history(merged, tag="vip")
    assert history[["customer_id", "valid_to"]].values.tolist() == [
        ["k", pd.Timestamp(D3)],
        ["m", pd.Timestamp(D2)],
        ["o", pd.NaT],
    ]


def test_rule_tags_read_the_persons_tags_and_apply_writes_survivors(merged: Store) -> None:
    # A rule tag left open on a merged-away record before the merge was known.
    before = datetime(2024, 5, 1)
    save_tag_definition(merged, VIP_RULE)
    with merged.begin() as conn:
        conn.execute(
            insert(CustomerTag),
            [{"customer_id": "m", "tag_id": "vip_rule", "valid_from": before, "source": "rule",
              "actor": "crm_ml", "reason": "rule v1"}],
        )  # fmt: skip
    summary = apply_tags(merged, pd.DataFrame(index=PEOPLE), D1, definitions=[VIP_RULE])
    assert summary.loc["vip_rule", ["members", "added", "removed"]].tolist() == [2, 2, 1]
    history = tag_history(merged, tag="vip_rule")
    assert history[["customer_id", "valid_from", "valid_to"]].values.tolist() == [
        ["m", pd.Timestamp(before), pd.Timestamp(D1)],  # closed on the record it was opened on
        ["o", pd.Timestamp(D1), pd.NaT],
        ["s", pd.Timestamp(D1), pd.NaT],
    ]
    assert list(customers_with_tag(merged, "vip_rule", before)) == ["s"]
    assert list(customers_with_tag(merged, "vip_rule", D1)) == ["o", "s"]
