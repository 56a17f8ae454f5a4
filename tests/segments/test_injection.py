"""Injection attempts through rules, names, ids and patterns leave every table intact."""

from __future__ import annotations

import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features

from crm_ml.errors import CrmMlError, NotFoundError, RuleError
from crm_ml.segments import Segment, evaluate_segment, save_segment, segment_sizes
from crm_ml.store import Store, table_counts
from crm_ml.tags import (
    TagDefinition,
    customers_with_tag,
    save_tag_definition,
    tag_customers,
    tag_history,
)

RULES = [
    "1=1; DROP TABLE customer",
    "name);--",
    "revenue_365d > 0; DELETE FROM customer_tag",
    "revenue_365d > 0 OR 1=1 --",
    "' OR '1'='1",
    'tag("vip\'); DROP TABLE customer; --")',
    'consent("sms\'; DROP TABLE consent; --", "marketing")',
    "__import__('os').system('echo pwned')",
    "revenue_365d.__class__",
    "name == 'x'",
]


@pytest.fixture
def seeded(store: Store) -> Store:
    add_customers(store, ["c1", "c2", "c3"], {"c1": "张三", "c2": "李四", "c3": "王五"})
    save_tag_definition(store, TagDefinition("vip", "VIP", kind="manual"))
    tag_customers(store, "vip", ["c1"], at=D1, actor="t", reason="seed")
    return store


@pytest.mark.parametrize("rule", RULES)
def test_malicious_rules_are_rejected_and_tables_intact(seeded: Store, rule: str) -> None:
    before = table_counts(seeded)
    with pytest.raises(RuleError):
        save_segment(seeded, Segment("attack", rule), actor="mallory")
    with pytest.raises(RuleError):
        save_tag_definition(seeded, TagDefinition("attack", "A", rule=rule))
    after = table_counts(seeded)
    pd.testing.assert_frame_equal(before, after)


def test_malicious_names_and_ids_are_refused(seeded: Store) -> None:
    before = table_counts(seeded)
    for bad in ("name);--", "x'; DROP TABLE customer;--", "Robert'); DROP TABLE tag_definition;"):
        with pytest.raises(CrmMlError):
            TagDefinition(bad, "x", kind="manual")
        with pytest.raises(CrmMlError):
            Segment(bad, "revenue_365d > 0")
    with pytest.raises(CrmMlError, match="not in the store"):
        tag_customers(seeded, "vip", ["c1'; DROP TABLE customer;--"], at=D1, actor="m", reason="x")
    with pytest.raises(NotFoundError):  # the name is checked in Python, never put into SQL
        customers_with_tag(seeded, "vip' OR '1'='1", D1)
    assert tag_history(seeded, customer_id="c1' OR '1'='1").empty
    pd.testing.assert_frame_equal(before, table_counts(seeded))


def test_percent_in_like_pattern_is_only_a_wildcard(seeded: Store) -> None:
    frame = features(
        revenue_365d=[1.0, 2.0, 3.0],
        acquisition_channel=pd.array(["app%", "app", "store"], dtype="str"),
    )
    before = table_counts(seeded)
    literal = Segment("pct", 'like(acquisition_channel, "app\\\\%")')
    assert list(evaluate_segment(seeded, literal, frame, D1)) == ["c1"]
    wildcard = Segment("pct", 'like(acquisition_channel, "%")')
    assert list(evaluate_segment(seeded, wildcard, frame, D1)) == ["c1", "c2", "c3"]
    quote = Segment("pct", 'like(acquisition_channel, "%\'; DROP TABLE customer; --")')
    assert list(evaluate_segment(seeded, quote, frame, D1)) == []
    pd.testing.assert_frame_equal(before, table_counts(seeded))
    assert segment_sizes(seeded).empty
