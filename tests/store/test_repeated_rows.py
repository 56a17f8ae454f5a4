"""Rows that repeat an earlier row exactly load once, with a warning (review L5).

Overlapping export pages repeat whole rows; they used to refuse the file like
two rows with one key and different values, which are still refused.
"""

import pandas as pd
import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file, import_frame

AS_OF = "2026-01-01"
HEADER = "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
O1 = "SO1,C1,2025/5/21 6:48,offline,1357.00,1357.00\n"
O2 = "SO2,C1,2025/5/26 15:56,online,4161.00,4161.00\n"


@pytest.fixture
def shop(store, tmp_path):
    body = "customer_id,name,created_at\nC1,张三,2025-01-01\n"
    import_file(store, "customer", write(tmp_path, "c.csv", body), as_of=AS_OF)
    return store


def test_an_exact_repeat_loads_once_with_a_warning(shop, tmp_path):
    path = write(tmp_path, "o.csv", HEADER + O1 + O2 + O1 + O2 + O1)
    result = import_file(shop, "orders", path, as_of=AS_OF)
    assert (result.rows_read, result.inserted, result.rejected) == (5, 2, 0)
    assert result.warnings == (
        "3 row(s) repeat an earlier row exactly (line 4 = line 2, line 5 = line 3, line 6 = "
        "line 2) and were loaded once: overlapping export pages? They count as read, not as "
        "inserted, updated, unchanged or rejected. Rows that repeat a key with different "
        "values are still refused.",
    )
    assert rows(shop, "select order_id from orders order by order_id") == [("SO1",), ("SO2",)]


def test_a_repeated_key_with_other_values_is_still_refused(shop, tmp_path):
    changed = O2.replace("online", "offline")
    path = write(tmp_path, "o.csv", HEADER + O1 + O2 + O1 + changed)
    with pytest.raises(LoadRejectedError) as info:
        import_file(shop, "orders", path, as_of=AS_OF)
    assert "'SO2' appears 2 times in this file (lines 3 … 5)" in str(info.value)
    assert list(info.value.rejects["line"]) == [3, 5]  # line 4 repeats line 2: no reject


def test_repeats_in_a_dataframe_are_counted_by_row(shop):
    frame = pd.DataFrame(
        {
            "order_id": ["SO1", "SO1"],
            "customer_id": ["C1", "C1"],
            "ordered_at": [pd.Timestamp("2025-05-21 06:48")] * 2,
            "channel": ["offline"] * 2,
            "gross_amount": [10.0, 10.0],
            "net_amount": [10.0, 10.0],
        }
    )
    result = import_frame(shop, "orders", frame, as_of=AS_OF)
    assert (result.rows_read, result.inserted) == (2, 1)
    assert "(row 2 = row 1)" in result.warnings[0]
