"""customer_features on every engine against the pandas reference, and its contract."""

from datetime import datetime

import pandas as pd
import pytest
from store_urls import POSTGRES_URL, drop_postgres_database, make_store_url

from crm_ml.errors import ConfigError
from crm_ml.features import build_feature_file, customer_features, feature_list
from crm_ml.features.backend import ibis_backend
from crm_ml.store import Store

from .reference import reference_features
from .rows import insert_rows
from .sample import AS_OF, sample_tables


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert list(got.index) == list(expected.index)
    assert got.index.name == "customer_id"
    assert (got.dtypes == expected.dtypes).all()
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.fixture
def sample_store(store):
    insert_rows(store, sample_tables())
    return store


def test_every_group_matches_the_reference(sample_store):
    assert_same(customer_features(sample_store, AS_OF), reference_features(sample_tables(), AS_OF))


@pytest.mark.parametrize("as_of", ["2023-06-01", "2024-05-01 12:00:00", "2026-01-01"])
def test_reference_at_other_dates(sample_store, as_of):
    cutoff = datetime.fromisoformat(as_of)
    # 2026-01-01 is long after the sample's last order: allowed as a deliberate what-if.
    got = customer_features(sample_store, cutoff, allow_outside_data=True)
    assert_same(got, reference_features(sample_tables(), cutoff))


def test_types_follow_the_catalog(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    frame = customer_features(duckdb_store, AS_OF)
    for feature in feature_list():
        column = frame[feature.name]
        assert str(column.dtype) == feature.dtype, feature.name
        if feature.dtype == "category":
            assert tuple(column.cat.categories) == feature.categories
    assert frame.index.dtype == "str"


def test_population_excludes_merged_late_and_exactly_as_of_customers(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    frame = customer_features(duckdb_store, AS_OF, groups=["value"])
    # c3, c4, c5 merged into c2; c6 created after as_of; c8 created exactly at as_of.
    assert list(frame.index) == ["c1", "c10", "c2", "c7", "c9"]
    assert frame.loc["c2", "orders_lifetime"] == 4  # own order + c3's + c4's + c5's (chain)


def test_days_since_first_order_counts_from_the_first_purchase_not_registration(sample_store):
    frame = customer_features(sample_store, AS_OF, groups=["value"])
    first = frame["days_since_first_order"]
    # c9 registered in 2021 but first bought on 2024-06-20 11:00: a new customer all the same.
    assert first["c9"] == pytest.approx(10 + 13 / 24)
    assert frame.loc["c9", "tenure_days"] > 1000
    # c2's first order is o9 on 2022-12-01, on the merged-away record c3.
    assert first["c2"] == pytest.approx(578.0)
    assert first["c1"] == pytest.approx(542 + 14 / 24)  # o1, 2023-01-05 10:00
    assert pd.isna(first["c7"])  # no order


def test_merged_history_gives_the_same_answer_rekeyed_or_not(store):
    tables = sample_tables()
    # consent is left as is: c3's and c2's decisions share a primary key once re-keyed.
    for name, rows in tables.items():
        if name not in ("customer", "customer_merge", "consent"):
            for row in rows:
                if row.get("customer_id") in ("c3", "c4", "c5"):
                    row["customer_id"] = "c2"
    insert_rows(store, tables)
    assert_same(customer_features(store, AS_OF), reference_features(sample_tables(), AS_OF))


def test_groups_subset_and_order(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    frame = customer_features(duckdb_store, AS_OF, groups=["profile", "campaigns"])
    assert list(frame.columns) == [f.name for f in feature_list(["campaigns", "profile"])]


def test_empty_store_gives_an_empty_typed_frame(store):
    frame = customer_features(store, AS_OF, allow_outside_data=True)  # refused by default
    assert frame.empty
    assert list(frame.columns) == [f.name for f in feature_list()]
    assert str(frame["orders_30d"].dtype) == "int64"


def test_customers_without_history_get_the_declared_fill(duckdb_store):
    created = AS_OF.replace(year=2023)
    insert_rows(
        duckdb_store,
        {
            "customer": [
                {"customer_id": "000123", "created_at": created},
                {"customer_id": "buyer", "created_at": created},
            ],
            "orders": [
                dict(order_id="o1", customer_id="buyer", ordered_at=AS_OF, gross_amount=1.0)
            ],
        },
    )
    row = customer_features(duckdb_store, AS_OF).loc["000123"]
    assert row["orders_lifetime"] == 0 and row["revenue_90d"] == 0.0
    assert pd.isna(row["recency_days"]) and pd.isna(row["refund_rate"])
    assert row["gender"] == "unknown" and row["age_band"] == "unknown"
    assert not row["is_member"] and not row["has_owner"]
    assert row["tenure_days"] == pytest.approx(366.0)


def test_as_of_accepts_dates_strings_and_aware_times(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    base = customer_features(duckdb_store, AS_OF, groups=["value"])
    aware = pd.Timestamp("2024-07-01 08:00", tz="Asia/Shanghai")
    pd.testing.assert_frame_equal(customer_features(duckdb_store, aware, groups=["value"]), base)
    pd.testing.assert_frame_equal(
        customer_features(duckdb_store, "2024-07-01", groups=["value"]), base
    )
    with pytest.raises(ConfigError, match="not a date in ISO form"):
        customer_features(duckdb_store, "next tuesday")


def test_progress_callback_sees_every_group(duckdb_store):
    insert_rows(duckdb_store, sample_tables())
    calls = []
    customer_features(duckdb_store, AS_OF, progress=lambda *a: calls.append(a))
    assert calls[0] == ("value", 0, 6)
    assert calls[-1] == ("done", 6, 6)
    assert [c[0] for c in calls[:-1]] == [
        "value",
        "product",
        "behaviour",
        "loyalty",
        "campaigns",
        "profile",
    ]


def test_build_feature_file_writes_parquet_atomically(duckdb_store, tmp_path):
    insert_rows(duckdb_store, sample_tables())
    target = tmp_path / "out" / "features.parquet"
    written = build_feature_file(duckdb_store, AS_OF, target, progress=False)
    assert written == target
    assert [p.name for p in target.parent.iterdir()] == ["features.parquet"]
    back = pd.read_parquet(target)
    pd.testing.assert_frame_equal(back, customer_features(duckdb_store, AS_OF), check_like=False)
    assert back.attrs["as_of"] == "2024-07-01T00:00:00"


def test_a_failed_build_leaves_the_previous_file(duckdb_store, tmp_path, monkeypatch):
    insert_rows(duckdb_store, sample_tables())
    target = tmp_path / "out" / "features.parquet"
    target.parent.mkdir()
    target.write_bytes(b"previous")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        build_feature_file(duckdb_store, AS_OF, target, progress=False)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in target.parent.iterdir()] == ["features.parquet"]


def test_ibis_backend_closes_the_duckdb_file(duckdb_store):
    with ibis_backend(duckdb_store) as con:
        assert "orders" in con.list_tables()
    # The file is free again: another engine can open it for writing.
    insert_rows(duckdb_store, {"customer": [{"customer_id": "x", "created_at": AS_OF}]})


def test_without_temporary_tables_the_answer_is_the_same(duckdb_store, monkeypatch):
    # A read-only PostgreSQL replica refuses temporary tables; the plain expressions are used.
    from ibis.backends.duckdb import Backend

    insert_rows(duckdb_store, sample_tables())
    expected = customer_features(duckdb_store, AS_OF)

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot execute CREATE TABLE in a read-only transaction")

    monkeypatch.setattr(Backend, "create_table", refuse)
    pd.testing.assert_frame_equal(customer_features(duckdb_store, AS_OF), expected)


def test_postgres_url_options_reach_the_driver():
    from crm_ml.features.backend import _postgres_kwargs

    kwargs = _postgres_kwargs(
        "postgresql+psycopg://crm:s3cret@db.example:6543/crm?sslmode=require&host=ignored"
    )
    assert kwargs == {
        "host": "db.example",
        "port": 6543,
        "user": "crm",
        "password": "s3cret",
        "database": "crm",
        "sslmode": "require",
    }
    socket = _postgres_kwargs("postgresql+psycopg://postgres@/postgres?host=/tmp/crm_ml_pg")
    assert socket["host"] == "/tmp/crm_ml_pg" and "port" not in socket


def test_revenue_is_net_of_refunds_made_before_as_of(store):
    """A fully refunded order is worth nothing, as in the lists; a later refund is not known yet."""
    created = datetime(2023, 1, 1)
    day = datetime(2024, 5, 1)
    orders = [
        # order, line amount, order discount, refunded, refunded at
        ("full", 8000.0, 0.0, 8000.0, datetime(2024, 5, 5)),
        ("over", 120.0, 20.0, 120.0, datetime(2024, 5, 6)),  # refund of the undiscounted line
        ("part", 300.0, 0.0, 100.0, datetime(2024, 5, 7)),
        ("later", 50.0, 0.0, 50.0, AS_OF),  # refunded at as_of: unknown at as_of
    ]
    insert_rows(
        store,
        {
            "customer": [{"customer_id": "c1", "created_at": created}],
            "product": [{"product_id": "p1", "category": "beauty"}],
            "orders": [
                dict(
                    order_id=o,
                    customer_id="c1",
                    ordered_at=day,
                    gross_amount=amount,
                    discount_amount=discount,
                )
                for o, amount, discount, _, _ in orders
            ],
            "order_item": [
                dict(
                    order_id=o,
                    line_no=1,
                    product_id="p1",
                    amount=amount,
                    refund_amount=refund,
                    refunded_at=at,
                )
                for o, amount, _, refund, at in orders
            ],
        },
    )
    row = customer_features(store, AS_OF, groups=["value"]).loc["c1"]
    assert row["revenue_lifetime"] == pytest.approx(0 + 0 + 200 + 50)
    assert row["revenue_365d"] == pytest.approx(250.0)
    assert row["max_basket_value"] == pytest.approx(200.0)  # not the refunded 8,000
    assert row["avg_order_value"] == pytest.approx(250.0 / 4)
    assert row["orders_lifetime"] == 4  # a refunded order was still placed
    # Before the refunds, the same orders are worth what was paid.
    before = customer_features(store, datetime(2024, 5, 2), groups=["value"]).loc["c1"]
    assert before["revenue_lifetime"] == pytest.approx(8450.0)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CRM_ML_TEST_POSTGRES_URL (CI sets it)")
def test_postgres_plans_feature_queries_for_every_row(tmp_path):
    # Ibis reads through a cursor, planned for its first 10 % of rows by default: the
    # browsing-since-last-order join then took a nested loop, 261 s instead of 2 s at 50k.
    url, database = make_store_url("postgresql", tmp_path)
    store = Store(url, create=True)
    try:
        with ibis_backend(store) as con, con.begin() as cursor:
            cursor.execute("SHOW cursor_tuple_fraction")
            assert cursor.fetchone()[0] == "1"
    finally:
        store.dispose()
        drop_postgres_database(database)
