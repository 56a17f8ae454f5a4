from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.features import check_as_of, data_span, default_as_of, span
from crm_ml.features.span import MAX_DAYS_AFTER_DATA, STALE_AFTER_DAYS

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


def test_a_date_weeks_after_the_data_is_warned_about_once(sample_store, caplog, monkeypatch):
    store, _ = sample_store
    monkeypatch.setattr(span, "_warned", set())  # warned once per process: start afresh
    with caplog.at_level("WARNING", logger="crm_ml.features.span"):
        check_as_of(store, AFTER + timedelta(days=STALE_AFTER_DAYS))  # a week: no warning
        assert caplog.text == ""
        late = AFTER + timedelta(days=74)
        check_as_of(store, late, what="--as-of")
        check_as_of(store, late, what="--as-of")  # the same command checks again: one warning
    assert caplog.text.count("is 74 days after the last recorded order") == 1
    assert "--as-of 2024-09-16 is 74 days after" in caplog.text
    assert "every customer looks 74 days more lapsed" in caplog.text


def test_an_empty_store_has_no_default_date(duckdb_store):
    with pytest.raises(NotFoundError, match="no orders"):
        default_as_of(duckdb_store)
    with pytest.raises(ValidationError, match="no customers"):
        check_as_of(duckdb_store, "2024-01-01")


def test_a_year_0_date_in_the_store_is_named_with_its_table_and_column(duckdb_store):
    # What an import before full-width digits were read made of ２０２５/１/１ 10:00.
    customer = dict(customer_id="C_FW", name="全角", created_at=datetime(2025, 1, 1))
    insert_rows(duckdb_store, {"customer": [customer]})
    with duckdb_store.begin() as conn:
        conn.execute(
            text(
                "UPDATE customer SET created_at = TIMESTAMP '0001-01-01 00:00:00' - INTERVAL 8 HOUR"
            )
        )
    with pytest.raises(
        ValidationError,
        match=(
            r"^The store's customer\.created_at holds 0000-12-31 16:00:00, a date Python cannot "
            r"read .*SELECT \* FROM customer WHERE created_at = \(SELECT MIN\(created_at\) FROM "
            r"customer\).* import that customer again with its real created_at"
        ),
    ):
        data_span(duckdb_store)
