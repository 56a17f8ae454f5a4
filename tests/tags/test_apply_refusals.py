"""apply_tags refuses, before writing, a features frame that would end other customers' tags."""

from __future__ import annotations

import pandas as pd
import pytest
from customer_helpers import D1, D2, features
from sqlalchemy import insert, update

from crm_ml.errors import ValidationError
from crm_ml.store import Store
from crm_ml.store.schema import Customer, CustomerMerge
from crm_ml.tags import (
    TagDefinition,
    apply_tags,
    customers_with_tag,
    evaluate_tags,
    get_tag_definition,
    tag_history,
    tags_apply_command,
)

DORMANT = TagDefinition("dormant", "沉睡客户", "lifecycle", rule="recency_days > 60")
STRICTER = TagDefinition("dormant", "沉睡客户", "lifecycle", rule="recency_days > 80")


def everyone() -> pd.DataFrame:
    return features(recency_days=[90.0, 100.0, 70.0, 5.0, 200.0])


@pytest.fixture
def tagged(five: Store) -> Store:
    """Customers c1..c5; c1, c2, c3 and c5 dormant since D1."""
    apply_tags(five, everyone(), D1, definitions=[DORMANT])
    return five


def _unchanged(store: Store, before: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(tag_history(store), before)
    assert get_tag_definition(store, "dormant").version == 1


def test_a_partial_frame_is_refused_and_nothing_is_written(tagged: Store) -> None:
    before = tag_history(tagged)
    with pytest.raises(ValidationError) as info:
        apply_tags(tagged, everyone().iloc[:2], D2, definitions=[STRICTER])
    message = str(info.value)
    assert "covers 2 of the 5 customers who exist at 2024-07-01 00:00" in message
    assert "3 are missing, e.g. 'c3', 'c4', 'c5'" in message
    assert "Pass customer_features(store, as_of)" in message
    _unchanged(tagged, before)
    assert list(customers_with_tag(tagged, "dormant", D2)) == ["c1", "c2", "c3", "c5"]


def test_one_missing_customer_is_refused_too(tagged: Store) -> None:
    with pytest.raises(ValidationError, match=r"covers 4 of the 5 .* 1 is missing, e\.g\. 'c5'"):
        apply_tags(tagged, everyone().iloc[:4], D2, definitions=[DORMANT])


def test_an_empty_frame_is_refused(tagged: Store) -> None:
    before = tag_history(tagged)
    with pytest.raises(ValidationError, match="features frame is empty, but 5 customers exist"):
        apply_tags(tagged, everyone().iloc[:0], D2)
    _unchanged(tagged, before)


def test_a_frame_built_for_another_date_is_refused(tagged: Store) -> None:
    before = tag_history(tagged)
    stale = everyone()
    stale.attrs["as_of"] = pd.Timestamp(D1)
    said = "built as of 2024-06-01 but are being tagged as of 2024-07-01"
    with pytest.raises(ValidationError, match=said):
        apply_tags(tagged, stale, D2, definitions=[STRICTER])
    _unchanged(tagged, before)
    with pytest.raises(ValidationError, match=said):
        evaluate_tags(tagged, stale, D2)
    stale.attrs["as_of"] = "2024-07-01"  # the same date, in any form, is applied
    assert apply_tags(tagged, stale, D2, definitions=[STRICTER]).loc["dormant", "members"] == 3


def test_the_command_with_given_features_is_protected_too(tagged: Store) -> None:
    with pytest.raises(ValidationError, match="3 are missing"):
        tags_apply_command(tagged, D2, features=everyone().iloc[:2])


def test_merged_away_and_later_customers_are_not_expected(five: Store) -> None:
    with five.begin() as conn:
        # c5 was merged into c1 (a merge counts whatever its date); c6 arrives after D1.
        conn.execute(
            insert(CustomerMerge),
            [{"merged_id": "c5", "surviving_id": "c1", "merged_at": D2, "reason": "same phone"}],
        )
        conn.execute(update(Customer).where(Customer.customer_id == "c5").values(status="merged"))
        conn.execute(
            insert(Customer),
            [{"customer_id": "c6", "created_at": D2, "status": "active", "is_member": True}],
        )
    with pytest.raises(ValidationError, match=r"covers 3 of the 4 customers .* e\.g\. 'c4'"):
        apply_tags(five, everyone().iloc[:3], D1, definitions=[DORMANT])
    summary = apply_tags(five, everyone().iloc[:4], D1, definitions=[DORMANT])
    assert summary.loc["dormant", "members"] == 3
