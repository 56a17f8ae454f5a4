"""Importing dates as Chinese exports write them: big files, full-width digits, time zones."""

from pathlib import Path

import pandas as pd
import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file

AS_OF = "2026-01-01"
ORDER_HEADER = "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
#: Over pyarrow's 1 MiB read block, so that the columns arrive in several Arrow chunks.
BIG_ROWS = 30_000
SHAPES = [  # (as written, as stored in UTC for Asia/Shanghai)
    ("2025/3/7 14:05", "2025-03-07 06:05"),
    ("2025-03-07T14:05:00+08:00", "2025-03-07 06:05"),
    ("2025-03-07", "2025-03-06 16:00"),
    ("2025-03-07 14:05:00", "2025-03-07 06:05"),
]


@pytest.fixture
def customers(duckdb_store, tmp_path):
    body = "customer_id,name,created_at\n0001,张三,2024-01-01\n0002,李四,2024-01-01\n"
    import_file(duckdb_store, "customer", write(tmp_path, "customers.csv", body), as_of=AS_OF)
    return duckdb_store


def big_orders(folder: Path, bad_line: int | None = None) -> Path:
    lines = [
        f"SO{i:08d},000{1 + i % 2},{SHAPES[i % len(SHAPES)][0]},online,199.00,199.00\n"
        for i in range(BIG_ROWS)
    ]
    if bad_line is not None:
        lines[bad_line - 2] = "SOBAD,0001,2025-02-30 10:00:00,online,1.00,1.00\n"
    path = write(folder, "orders.csv", ORDER_HEADER + "".join(lines))
    assert path.stat().st_size > 1.5 * 2**20  # at least two read blocks
    return path


def test_a_file_over_1_mb_with_mixed_timestamp_shapes_loads(customers, tmp_path):
    result = import_file(customers, "orders", big_orders(tmp_path), as_of=AS_OF)
    assert (result.inserted, result.rejected) == (BIG_ROWS, 0)
    stored = rows(customers, "SELECT ordered_at FROM orders WHERE order_id < 'SO00000004'")
    assert sorted(stored) == sorted((pd.Timestamp(utc).to_pydatetime(),) for _, utc in SHAPES)


def test_a_bad_date_deep_in_a_file_over_1_mb_is_a_reject_naming_its_line(customers, tmp_path):
    line = BIG_ROWS - 10
    with pytest.raises(LoadRejectedError) as refused:
        import_file(customers, "orders", big_orders(tmp_path, bad_line=line), as_of=AS_OF)
    rejects = refused.value.rejects
    assert rejects[["line", "column", "rule"]].values.tolist() == [[line, "ordered_at", "date"]]
    assert f"orders.csv:{line} ordered_at: '2025-02-30 10:00:00' is not a real date" in str(
        refused.value
    )
    assert rows(customers, "SELECT COUNT(*) FROM orders") == [(0,)]


def test_a_customer_file_over_1_mb_with_birth_dates_loads(duckdb_store, tmp_path):
    def birth_date(i: int) -> str:  # every seventh as Excel writes it, to need the regex
        year, month, day = 1960 + i % 40, 1 + i % 12, 1 + i % 28
        return f"{year}/{month}/{day}" if i % 7 == 0 else f"{year}-{month:02d}-{day:02d}"

    body = "customer_id,name,birth_date,city,created_at\n" + "".join(
        f"C{i:07d},客户{i},{birth_date(i)},上海,2024-01-01 09:00:00\n" for i in range(30_000)
    )
    path = write(tmp_path, "customers.csv", body)
    assert path.stat().st_size > 1.5 * 2**20
    result = import_file(duckdb_store, "customer", path, as_of=AS_OF)
    assert (result.inserted, result.rejected) == (30_000, 0)
    born = "SELECT birth_date FROM customer WHERE customer_id IN ('C0000013', 'C0029995')"
    assert sorted(rows(duckdb_store, born)) == [
        (pd.Timestamp("1973-02-14").to_pydatetime(),),
        (pd.Timestamp("1995-08-08").to_pydatetime(),),
    ]


def test_full_width_digits_are_stored_as_the_numbers_they_show(customers, tmp_path):
    body = "customer_id,name,city_tier,created_at\nC_FW,全角,２,２０２５/１/１ 10:00\n"
    import_file(customers, "customer", write(tmp_path, "fw.csv", body), as_of=AS_OF)
    assert rows(
        customers, "SELECT city_tier, created_at FROM customer WHERE customer_id = 'C_FW'"
    ) == [(2, pd.Timestamp("2025-01-01 02:00").to_pydatetime())]
    body = "product_id,name,category,list_price\nP9001,面霜,美妆,１９９.００\n"
    import_file(customers, "product", write(tmp_path, "p.csv", body), as_of=AS_OF)
    assert rows(customers, "SELECT list_price FROM product") == [(199.0,)]


def test_a_placeholder_year_is_refused_naming_its_line(customers, tmp_path):
    body = "customer_id,name,created_at\nC9,王五,0001-01-01 00:00:00\n"
    with pytest.raises(
        LoadRejectedError,
        match=r"c\.csv:2 created_at: '0001-01-01 00:00:00' is outside the years 1800 to 9999",
    ):
        import_file(customers, "customer", write(tmp_path, "c.csv", body), as_of=AS_OF)


# --------------------------------------------------------------------------- append-only (L2)

ORDERS = ORDER_HEADER + "O1,0001,2025/7/17 19:55,online,10,10\nO2,0002,2025/7/18 9:00,online,5,5\n"


@pytest.fixture
def ordered(customers, tmp_path):
    import_file(customers, "orders", write(tmp_path, "first.csv", ORDERS), as_of=AS_OF)
    return customers


def test_append_only_rejects_say_their_times_are_utc(ordered, tmp_path):
    body = ORDER_HEADER + "O1,0001,2025-03-07T14:05:00+08:00,online,10,10\n"
    with pytest.raises(LoadRejectedError) as refused:
        import_file(ordered, "orders", write(tmp_path, "again.csv", body), as_of=AS_OF)
    message = refused.value.rejects["message"].tolist()
    assert len(message) == 1
    assert (
        "the store has ordered_at 2025-07-17 11:55:00 UTC, the file ordered_at "
        "2025-03-07 06:05:00 UTC)"
    ) in message[0]
    assert "time zone" not in message[0]  # 132 days apart: no zone explains it


def test_a_file_read_in_another_time_zone_gets_one_hint(ordered, tmp_path):
    with pytest.raises(LoadRejectedError) as refused:
        import_file(
            ordered, "orders", write(tmp_path, "utc.csv", ORDERS), as_of=AS_OF, timezone="UTC"
        )
    first, second = refused.value.rejects["message"].tolist()
    assert "the store has ordered_at 2025-07-17 11:55:00 UTC, the file ordered_at " in first
    assert first.endswith(
        "Note: all 2 such rows are 8 h later in the file than in the store: was the file read "
        "in another time zone than the import that loaded it? This import read times without "
        "an offset in UTC (--timezone); the store's match them read at UTC+8, e.g. --timezone "
        "Asia/Shanghai. Import the file with the earlier import's --timezone"
    )
    assert "time zone" not in second


def test_the_zone_hint_names_the_zone_the_store_was_loaded_in(customers, tmp_path):
    # Loaded in UTC (rows exported from the store), re-read in the default Asia/Shanghai.
    import_file(
        customers, "orders", write(tmp_path, "utc.csv", ORDERS), as_of=AS_OF, timezone="UTC"
    )
    with pytest.raises(LoadRejectedError) as refused:
        import_file(customers, "orders", write(tmp_path, "again.csv", ORDERS), as_of=AS_OF)
    first = refused.value.rejects["message"].iloc[0]
    assert "all 2 such rows are 8 h earlier in the file than in the store" in first
    assert first.endswith(
        "This import read times without an offset in Asia/Shanghai (--timezone); the store's "
        "match them read at UTC+0, e.g. --timezone UTC. Import the file with the earlier "
        "import's --timezone"
    )


def test_no_zone_hint_when_every_row_is_whole_days_off(ordered, tmp_path):
    # 31 days apart is another date typed, not a file read in another time zone.
    body = (
        ORDER_HEADER + "O1,0001,2025/8/17 19:55,online,10,10\nO2,0002,2025/8/18 9:00,online,5,5\n"
    )
    with pytest.raises(LoadRejectedError) as refused:
        import_file(ordered, "orders", write(tmp_path, "month.csv", body), as_of=AS_OF)
    assert not any("time zone" in m for m in refused.value.rejects["message"])


def test_no_zone_hint_when_the_shifts_differ(ordered, tmp_path):
    body = (
        ORDER_HEADER + "O1,0001,2025/7/17 20:55,online,10,10\nO2,0002,2025/7/18 11:00,online,5,5\n"
    )
    with pytest.raises(LoadRejectedError) as refused:
        import_file(ordered, "orders", write(tmp_path, "shifted.csv", body), as_of=AS_OF)
    assert not any("time zone" in m for m in refused.value.rejects["message"])
