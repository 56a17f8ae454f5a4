"""Nothing dated on or after as_of reaches a feature; a row exactly at as_of is not a feature."""

from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from crm_ml.features import customer_features

from .future import Change, future_changes
from .reference import reference_features
from .rows import complete, delete_rows, insert_rows
from .sample import AS_OF, JUST_BEFORE, sample_tables

#: A row per group dated exactly AS_OF: (group, table, key column, key, time column).
AT_AS_OF = [
    ("value", "orders", "order_id", "o6", "ordered_at"),
    ("product", "orders", "order_id", "o6", "ordered_at"),
    ("behaviour", "behavior_event", "event_id", "e12", "occurred_at"),
    ("loyalty", "points_ledger", "entry_id", "pt5", "posted_at"),
    ("loyalty", "coupon", "coupon_id", "k4", "issued_at"),
    ("loyalty", "stored_value_ledger", "entry_id", "sv4", "posted_at"),
    ("loyalty", "tier_change", "to_tier", "black", "changed_at"),
    ("campaigns", "campaign_contact", "campaign_id", "m6", "contacted_at"),
    ("profile", "consent", "status", "withdrawn", "updated_at"),
    ("profile", "customer_owner", "owner_id", "owner2", "valid_from"),
]


def _row(table, column, key, at):
    rows = sample_tables()[table]
    return next(complete(table, r) for r in rows if r[column] == key and r[at] == AS_OF)


@pytest.mark.parametrize(("group", "table", "column", "key", "at"), AT_AS_OF)
def test_a_row_at_as_of_is_not_a_feature_but_a_microsecond_earlier_is(
    store, group, table, column, key, at
):
    insert_rows(store, sample_tables())
    with_row = customer_features(store, AS_OF, groups=[group])
    row = _row(table, column, key, at)
    delete_rows(store, {table: [row]})
    pd.testing.assert_frame_equal(customer_features(store, AS_OF, groups=[group]), with_row)
    insert_rows(store, {table: [{**row, at: JUST_BEFORE}]})
    earlier = customer_features(store, AS_OF, groups=[group])
    assert not earlier.equals(with_row), f"{table} row at as_of - 1 µs should count"


def test_sqlite_text_timestamps_compare_at_the_boundary(store):
    # SQLite stores '2024-06-30 23:59:59.999999' and '2024-07-01 00:00:00.000000' as text.
    insert_rows(store, sample_tables())
    frame = customer_features(store, AS_OF, groups=["value"])
    # o5 a microsecond before as_of counts, o6 exactly at as_of does not.
    assert frame.loc["c1", "orders_lifetime"] == 5
    assert frame.loc["c1", "recency_days"] == pytest.approx(1 / 86400)
    moved = customer_features(store, AS_OF + timedelta(microseconds=1), groups=["value"])
    assert moved.loc["c1", "orders_lifetime"] == 6


REFERENCE_AT_AS_OF = reference_features(sample_tables(), AS_OF)


@settings(max_examples=100, deadline=None)
@given(change=future_changes())
def test_reference_ignores_changes_on_or_after_as_of(change: Change):
    base = REFERENCE_AT_AS_OF
    after = reference_features(change.apply_to(sample_tables()), AS_OF)
    pd.testing.assert_frame_equal(after, base)


def _apply(store, change: Change) -> None:
    befores = _grouped([(t, before) for t, before, _ in change.replaced])
    afters = [(t, after) for t, _, after in change.replaced]
    delete_rows(store, befores)
    insert_rows(store, _merge(change.appended, afters))


def _undo(store, change: Change) -> None:
    afters = [(t, after) for t, _, after in change.replaced]
    delete_rows(store, _merge(change.appended, afters))
    insert_rows(store, _grouped([(t, before) for t, before, _ in change.replaced]))


def _grouped(pairs):
    out = {}
    for table, row in pairs:
        out.setdefault(table, []).append(row)
    return out


def _merge(appended, pairs):
    out = {table: list(rows) for table, rows in appended.items()}
    for table, rows in _grouped(pairs).items():
        out.setdefault(table, []).extend(rows)
    return out


@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"], indirect=True)
def test_engines_ignore_changes_on_or_after_as_of(store):
    insert_rows(store, sample_tables())
    base = customer_features(store, AS_OF)

    @settings(
        max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(change=future_changes())
    def check(change: Change) -> None:
        _apply(store, change)
        try:
            pd.testing.assert_frame_equal(customer_features(store, AS_OF), base)
        finally:
            _undo(store, change)

    check()
