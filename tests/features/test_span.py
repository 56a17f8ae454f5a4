from datetime import datetime, timedelta

import pytest

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features import check_as_of, data_span, default_as_of
from crm_ml.features.span import MAX_DAYS_AFTER_DATA

from .rows import insert_rows
from .sample import AFTER, sample_tables


@pytest.fixture
def sample_store(store):
    tables = sample_tables()
    insert_rows(store, tables)
    return store, tables


def test_the_span_runs_from_the_first_record_to_the_last_order(sample_store):
    store, tables = sample_store
    created = [row["created_at"] for row in tables["customer"]]
    ordered = [row["ordered_at"] for row in tables["orders"]]
    assert data_span(store) == (min(created + ordered), max(ordered))
    assert max(ordered) == AFTER


def test_the_default_date_is_the_midnight_after_the_last_order(sample_store):
    store, _ = sample_store
    # The last order is at midnight (2024-07-04 00:00): as_of must be after it to see it.
    assert datetime(2024, 7, 4) == AFTER
    assert default_as_of(store) == datetime(2024, 7, 5)
    assert check_as_of(store, datetime(2024, 7, 5)) == datetime(2024, 7, 5)
    at = datetime(2024, 7, 9, 18, 30)
    insert_rows(
        store, {"orders": [dict(order_id="o", customer_id="c1", ordered_at=at, gross_amount=1.0)]}
    )
    assert default_as_of(store) == datetime(2024, 7, 10)


def test_dates_outside_the_data_are_refused_by_name(sample_store):
    store, _ = sample_store
    first = data_span(store).first
    with pytest.raises(ValidationError, match=r"^--as-of .* before the store's data starts"):
        check_as_of(store, first - timedelta(days=1), what="--as-of")
    too_late = AFTER + timedelta(days=MAX_DAYS_AFTER_DATA + 1)
    with pytest.raises(ValidationError, match=f"{MAX_DAYS_AFTER_DATA + 1} days after the last"):
        check_as_of(store, too_late)
    assert check_as_of(store, AFTER + timedelta(days=MAX_DAYS_AFTER_DATA)) is not None


def test_an_empty_store_has_no_default_date(duckdb_store):
    with pytest.raises(NotFoundError, match="no orders"):
        default_as_of(duckdb_store)
    with pytest.raises(ValidationError, match="no customers"):
        check_as_of(duckdb_store, "2024-01-01")
