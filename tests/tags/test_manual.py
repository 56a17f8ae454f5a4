"""Manual and batch tagging: audit trail, refusals, batch from a rule."""

from __future__ import annotations

import pandas as pd
import pytest
from customer_helpers import D1, D2, D3, features

from crm_ml.erasure import erase_customer
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.store import Store
from crm_ml.tags import (
    TagDefinition,
    batch_tag_from_rule,
    customers_with_tag,
    save_tag_definition,
    tag_customers,
    tag_history,
    untag_customers,
)

VIP = TagDefinition("vip", "VIP客户", "manual_list", kind="manual", owner="crm-team")


def test_manual_tags_record_actor_and_reason(five: Store) -> None:
    save_tag_definition(five, VIP)
    result = tag_customers(five, "vip", ["c1", "c2"], at=D1, actor="li.na", reason="门店推荐")
    assert result["action"].tolist() == ["added", "added"]
    again = tag_customers(five, "vip", ["c2", "c3"], at=D2, actor="li.na", reason="复核")
    assert again["action"].tolist() == ["already", "added"]
    removed = untag_customers(five, "vip", ["c1", "c5"], at=D3, actor="wang", reason="客户要求")
    assert removed["action"].tolist() == ["removed", "not_tagged"]
    history = tag_history(five, tag="vip").set_index("customer_id")
    assert history.loc["c1", "actor"] == "li.na"
    assert history.loc["c1", "reason"].startswith("门店推荐 | removed 2024-08-01 00:00 by wang")
    assert history.loc["c1", "valid_to"] == pd.Timestamp(D3)
    assert set(history["source"]) == {"manual"}
    assert list(customers_with_tag(five, "vip", D2)) == ["c1", "c2", "c3"]
    assert list(customers_with_tag(five, "vip", D3)) == ["c2", "c3"]


def test_audit_fields_are_required(five: Store) -> None:
    save_tag_definition(five, VIP)
    with pytest.raises(ValidationError, match="needs an actor and a reason"):
        tag_customers(five, "vip", ["c1"], at=D1, actor="", reason="x")
    with pytest.raises(ValidationError, match="needs an actor and a reason"):
        untag_customers(five, "vip", ["c1"], at=D1, actor="me", reason=" ")


def test_unknown_customers_reject_the_whole_batch(five: Store) -> None:
    save_tag_definition(five, VIP)
    with pytest.raises(ValidationError, match=r"1 customer id\(s\) are not in the store.*c99"):
        tag_customers(five, "vip", ["c1", "c99"], at=D1, actor="me", reason="x")
    assert tag_history(five, tag="vip").empty


def test_rule_tags_and_unknown_tags_are_refused(five: Store) -> None:
    save_tag_definition(five, TagDefinition("dormant", "沉睡", rule="recency_days > 60"))
    with pytest.raises(ValidationError, match="is a rule tag"):
        tag_customers(five, "dormant", ["c1"], at=D1, actor="me", reason="x")
    with pytest.raises(NotFoundError, match="Did you mean 'dormant'"):
        tag_customers(five, "dormnt", ["c1"], at=D1, actor="me", reason="x")


def test_tagging_before_existing_history_is_refused(five: Store) -> None:
    save_tag_definition(five, VIP)
    tag_customers(five, "vip", ["c1"], at=D2, actor="me", reason="x")
    with pytest.raises(ValidationError, match="Tag forward in time"):
        untag_customers(five, "vip", ["c1"], at=D1, actor="me", reason="y")


def test_a_change_dated_in_the_future_is_refused(five: Store) -> None:
    # A mistyped year: the tag would count from 2027 on, and no list would see it till then.
    save_tag_definition(five, VIP)
    next_year = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(days=365)
    with pytest.raises(ValidationError, match=r"in the future.*leave it out \(`--at`\)"):
        tag_customers(five, "vip", ["c1"], at=next_year, actor="me", reason="x")
    with pytest.raises(ValidationError, match="in the future"):
        untag_customers(five, "vip", ["c1"], at=next_year, actor="me", reason="x")
    assert tag_history(five, tag="vip").empty
    today = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(hours=12)
    tag_customers(five, "vip", ["c1"], at=today, actor="me", reason="today, in Shanghai")


def test_batch_from_rule(five: Store) -> None:
    save_tag_definition(five, VIP)
    frame = features(revenue_365d=[5000.0, 10.0, 9000.0, 0.0, 1.0])
    result = batch_tag_from_rule(
        five, "vip", "revenue_365d >= 5000", frame, at=D1, actor="ops", reason="年度大客户"
    )
    assert result["customer_id"].tolist() == ["c1", "c3"]
    history = tag_history(five, tag="vip")
    assert set(history["source"]) == {"batch"}
    assert history["reason"].iloc[0] == "年度大客户 [rule: revenue_365d >= 5000]"


def test_erased_customers_are_skipped_with_a_warning_and_the_others_tagged(
    five: Store, caplog
) -> None:
    save_tag_definition(five, VIP)
    erase_customer(five, "c3", actor="合规官", reason="ticket DPO-17")
    result = tag_customers(five, "vip", ["c1", "c3"], at=D1, actor="li.na", reason="门店推荐")
    assert result["action"].tolist() == ["added", "erased"]
    assert "1 customer(s) were not given tag 'vip': erased on request" in caplog.text
    assert "'c3'" in caplog.text
    frame = features(revenue_365d=[5000.0, 10.0, 9000.0, 0.0, 1.0])
    batch = batch_tag_from_rule(
        five, "vip", "revenue_365d >= 5000", frame, at=D2, actor="ops", reason="年度大客户"
    )
    assert batch.set_index("customer_id")["action"].to_dict() == {"c1": "already", "c3": "erased"}
    assert list(customers_with_tag(five, "vip", D2)) == ["c1"]
