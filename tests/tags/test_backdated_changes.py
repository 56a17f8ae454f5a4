"""Manual tag changes cannot be dated before a list that was built with the tag."""

from __future__ import annotations

from datetime import datetime

import pytest
from customer_helpers import D1, D2, D3, features
from sqlalchemy import insert

from crm_ml.errors import ValidationError
from crm_ml.segments import Segment, save_segment, segment_members, snapshot_segment
from crm_ml.store import Store
from crm_ml.store.schema import ExportLog
from crm_ml.tags import (
    TagDefinition,
    customers_with_tag,
    save_tag_definition,
    tag_customers,
    untag_customers,
)

BETWEEN = datetime(2024, 6, 15)  # after D1, before the list of D2
AUDIT = {"actor": "wang", "reason": "误打标签"}
REFUSED = (
    r"segment 'vip_list' .*the list of 2024-07-01 \(a snapshot\) was built with this tag; "
    r"a change dated at or before it would rewrite what that list was built from.*"
    r"Date the change after 2024-07-01"
)


def _frame():
    return features(recency_days=[1, 1, 50, 1, 1])


@pytest.fixture
def sent(five: Store) -> Store:
    """vip held by c1, c2 from D1; segment vip_list (reads it) snapshotted at D2."""
    save_tag_definition(five, TagDefinition("vip", "VIP", kind="manual"))
    tag_customers(five, "vip", ["c1", "c2"], at=D1, actor="li", reason="门店推荐")
    save_segment(five, Segment("vip_list", 'tag("vip")'), actor="li")
    assert list(snapshot_segment(five, "vip_list", _frame(), D2)) == ["c1", "c2"]
    return five


def _unchanged(store: Store) -> None:
    assert list(customers_with_tag(store, "vip", D2)) == ["c1", "c2"]
    assert list(segment_members(store, "vip_list", D2)) == ["c1", "c2"]


def test_backdated_removal_is_refused(sent: Store) -> None:
    with pytest.raises(ValidationError, match=REFUSED):
        untag_customers(sent, "vip", ["c1"], at=BETWEEN, **AUDIT)
    _unchanged(sent)


def test_backdated_addition_is_refused(sent: Store) -> None:
    with pytest.raises(ValidationError, match=REFUSED):
        tag_customers(sent, "vip", ["c3"], at=BETWEEN, **AUDIT)
    _unchanged(sent)


def test_a_change_at_the_snapshot_date_is_refused(sent: Store) -> None:
    # In force at D2 (valid_from <= D2 < valid_to), so it would change the list of D2.
    with pytest.raises(ValidationError, match=REFUSED):
        untag_customers(sent, "vip", ["c1"], at=D2, **AUDIT)
    _unchanged(sent)


def test_changes_after_the_snapshot_are_accepted(sent: Store) -> None:
    assert untag_customers(sent, "vip", ["c1"], at=D3, **AUDIT)["action"].tolist() == ["removed"]
    assert tag_customers(sent, "vip", ["c3"], at=D3, **AUDIT)["action"].tolist() == ["added"]
    _unchanged(sent)
    assert list(customers_with_tag(sent, "vip", D3)) == ["c2", "c3"]


def test_an_export_without_snapshot_rows_counts_too(five: Store) -> None:
    save_tag_definition(five, TagDefinition("vip", "VIP", kind="manual"))
    tag_customers(five, "vip", ["c1"], at=D1, actor="li", reason="门店推荐")
    save_segment(five, Segment("vip_list", 'tag("vip")'), actor="li")
    with five.begin() as conn:
        conn.execute(
            insert(ExportLog).values(
                export_id="e1",
                exported_at=D3,
                actor="li",
                segment_id="vip_list",
                rule_version=1,
                as_of=D2,
                channel="sms",
                purpose="marketing",
                rows_kept=1,
                rows_excluded=0,
                unmasked=False,
                path="/lists/vip_list.csv",
            )
        )
    with pytest.raises(ValidationError, match=r"the list of 2024-07-01 \(an export\)"):
        untag_customers(five, "vip", ["c1"], at=BETWEEN, **AUDIT)
    assert list(customers_with_tag(five, "vip", D2)) == ["c1"]


def test_a_tag_no_segment_reads_is_unaffected(sent: Store) -> None:
    save_tag_definition(sent, TagDefinition("note", "备注", kind="manual"))
    tag_customers(sent, "note", ["c1"], at=D1, **AUDIT)
    untag_customers(sent, "note", ["c1"], at=BETWEEN, **AUDIT)
    assert list(customers_with_tag(sent, "note", D1)) == ["c1"]
    assert list(customers_with_tag(sent, "note", BETWEEN)) == []


def test_a_segment_that_does_not_read_the_tag_is_unaffected(five: Store) -> None:
    save_tag_definition(five, TagDefinition("vip", "VIP", kind="manual"))
    tag_customers(five, "vip", ["c1"], at=D1, actor="li", reason="门店推荐")
    save_segment(five, Segment("recent", "recency_days < 30"), actor="li")
    snapshot_segment(five, "recent", _frame(), D2)
    untag_customers(five, "vip", ["c1"], at=BETWEEN, **AUDIT)
    assert list(customers_with_tag(five, "vip", D2)) == []


def test_a_segment_reading_the_tag_through_a_rule_tag_counts(sent: Store) -> None:
    save_tag_definition(
        sent, TagDefinition("vip_recent", "近期VIP", rule='tag("vip") and recency_days < 30')
    )
    save_segment(sent, Segment("vip_recent_list", 'tag("vip_recent")'), actor="li")
    snapshot_segment(sent, "vip_recent_list", _frame(), D3)
    with pytest.raises(
        ValidationError,
        match=r"segment 'vip_recent_list' reads tag 'vip_recent', whose rule reads 'vip'.*"
        r"the list of 2024-08-01 \(a snapshot\)",
    ):
        untag_customers(sent, "vip", ["c1"], at=datetime(2024, 7, 15), **AUDIT)


def test_the_rule_a_snapshot_was_taken_with_counts_not_todays(sent: Store) -> None:
    # vip_list no longer reads vip, but its list of D2 was built with v1, which did.
    save_segment(sent, Segment("vip_list", "recency_days < 30"), actor="li")
    with pytest.raises(ValidationError, match=REFUSED):
        untag_customers(sent, "vip", ["c1"], at=BETWEEN, **AUDIT)
    _unchanged(sent)
