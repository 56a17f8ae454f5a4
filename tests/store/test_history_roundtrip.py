"""Moving a store with merges and profile changes through Parquet keeps its history.

The source store has merged duplicates (one chain: a record merged into a
survivor that was merged later) and profile changes, both from customer imports
and from merges filling a survivor's blank fields. It is exported, and every
table is imported into a fresh store in the documented order: ``customer``
first, the tables that refer to it, then ``customer_merge`` and
``customer_change``. The moved store must hold the same rows and give the same
features and list consent; without the history tables its features differ.
"""

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from crm_ml.demo import generate
from crm_ml.features import customer_features
from crm_ml.rules.context import surviving_ids
from crm_ml.segments.lists import consent_for
from crm_ml.store import Store, init_store
from crm_ml.store.export import EXPORT_TABLES, export_parquet
from crm_ml.store.identity import merge_customers, plan_merges
from crm_ml.store.loading import import_file, import_frame
from crm_ml.store.schema import SOURCE_TABLES, Base, Customer

AS_OF = "2026-01-01"
FEATURES_AT = "2025-07-01"
MERGED_AT = datetime(2025, 12, 31, 9, 0)
HISTORY = ("customer_merge", "customer_change")
CONSENT_AT = datetime(2026, 1, 1)


def _merge(store: Store) -> None:
    """Merge the generated duplicates, then one survivor into another (a chain of two)."""
    first = merge_customers(store, plan_merges(store), at=MERGED_AT, actor="steward")
    survivors = first.merges["surviving_id"].tolist()
    assert len(survivors) >= 2, "the generated store should hold duplicates"
    plan = pd.DataFrame({"merged_id": [survivors[0]], "surviving_id": [survivors[1]]})
    merge_customers(store, plan, at=MERGED_AT.replace(hour=10), actor="steward")


def _change_profiles(store: Store, tmp_path: Path) -> None:
    """Re-import a few customers with other gender, channel and city tier (audited now)."""
    with store.connect() as conn:
        query = select(Customer.customer_id, Customer.created_at).where(
            Customer.created_at < datetime(2025, 1, 1)
        )
        people = pd.DataFrame(conn.execute(query.order_by(Customer.customer_id).limit(12)).all())
    changed = people.assign(gender="male", acquisition_channel="referral", city_tier=6)
    # The store's times are UTC; a customer import of them must not shift created_at.
    import_frame(store, "customer", changed, timezone="UTC", reject_dir=tmp_path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, pd.DataFrame]:
    """A generated DuckDB store with merges and profile history, and its Parquet export."""
    folder = tmp_path_factory.mktemp("history")
    source = Store(f"duckdb:///{folder / 'source.duckdb'}", create=True)
    init_store(source)
    generate(source, n_customers=600, start="2024-01-01", end="2025-12-31", seed=11)
    _merge(source)
    _change_profiles(source, folder)
    summary = export_parquet(source, folder / "pq")
    assert (summary.loc[list(HISTORY), "rows"] > 0).all()
    yield source, folder / "pq", summary
    source.dispose()


def _contents(store: Store, name: str) -> list[tuple]:
    """A table's rows as tuples, sorted by key in Python (collations differ between engines)."""
    table = Base.metadata.tables[name]
    key = [list(table.columns).index(c) for c in table.primary_key.columns]
    with store.connect() as conn:
        rows = [tuple(row) for row in conn.execute(select(table)).all()]
    return sorted(rows, key=lambda row: [row[i] for i in key])


def _import_all(store: Store, folder: Path, summary: pd.DataFrame, tables, tmp_path) -> None:
    for name in tables:
        if summary.loc[name, "rows"]:
            # History is dated when it was recorded, maybe after AS_OF: check against load time.
            as_of = None if name in HISTORY else AS_OF
            result = import_file(store, name, folder / name, as_of=as_of, reject_dir=tmp_path)
            assert (result.inserted, result.rejected) == (summary.loc[name, "rows"], 0), name


def _consent(store: Store) -> pd.Series:
    """SMS marketing consent of every customer id, merged ones included, as lists read it."""
    with store.connect() as conn:
        ids = pd.Index(sorted(conn.execute(select(Customer.customer_id)).scalars()), dtype="str")
        return consent_for(conn, ids, "sms", "marketing", CONSENT_AT)


def _survivors(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return surviving_ids(conn)


def test_a_moved_store_keeps_its_merge_log_profile_history_and_features(exported, store, tmp_path):
    source, folder, summary = exported
    _import_all(store, folder, summary, SOURCE_TABLES, tmp_path)
    original = customer_features(source, FEATURES_AT)
    # Without its profile history the moved store's features differ: the test can tell.
    assert not customer_features(store, FEATURES_AT).equals(original)

    _import_all(store, folder, summary, HISTORY, tmp_path)

    for name in EXPORT_TABLES:
        assert _contents(store, name) == _contents(source, name), name
    pd.testing.assert_frame_equal(customer_features(store, FEATURES_AT), original)
    pd.testing.assert_series_equal(_consent(store), _consent(source))
    assert _survivors(store) == _survivors(source)


def test_importing_the_history_again_changes_nothing(exported, duckdb_store, tmp_path):
    _, folder, summary = exported
    _import_all(duckdb_store, folder, summary, ("customer", *HISTORY), tmp_path)
    for name in HISTORY:
        again = import_file(duckdb_store, name, folder / name, reject_dir=tmp_path)
        assert (again.inserted, again.unchanged) == (0, summary.loc[name, "rows"]), name
