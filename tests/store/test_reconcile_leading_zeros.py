"""An id file re-saved by a spreadsheet (0001 → 1) is refused, not loaded as new rows."""

import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file

AS_OF = "2025-01-01"
CUSTOMERS = "customer_id,name,created_at\n0001,张三,2024-01-01\n0002,李四,2024-01-01\n"


@pytest.fixture
def loaded(store, tmp_path):
    import_file(store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF)
    return store


def test_ids_that_lost_their_leading_zeros_are_refused(loaded, tmp_path):
    resaved = "customer_id,name,created_at\n1,张三,2024-01-01\n0002,李四,2024-01-01\n"

    with pytest.raises(LoadRejectedError) as info:
        import_file(loaded, "customer", write(tmp_path, "resaved.csv", resaved), as_of=AS_OF)

    rejects = info.value.rejects
    assert rejects[["file", "line", "column", "rule"]].values.tolist() == [
        ["resaved.csv", 2, "customer_id", "leading_zeros"]
    ]
    assert rejects["message"].iloc[0] == (
        "'1' looks like '0001' with its leading zeros lost (a spreadsheet does this): "
        "customer '0001' is in the store; re-export with the customer_id column as text"
    )
    assert rows(loaded, "select customer_id from customer order by 1") == [("0001",), ("0002",)]

    # Other new ids load, and an id stored without zeros is updated, not refused.
    body = "customer_id,name,created_at\n12,王五,2024-01-01\nC1,赵六,2024-01-01\n"
    result = import_file(loaded, "customer", write(tmp_path, "new.csv", body), as_of=AS_OF)
    assert (result.inserted, result.rejected) == (2, 0)
    again = "customer_id,name,created_at\n12,王五五,2024-01-01\n"
    updated = import_file(loaded, "customer", write(tmp_path, "again.csv", again), as_of=AS_OF)
    assert (updated.inserted, updated.updated, updated.rejected) == (0, 1, 0)


def test_the_same_check_guards_other_dimension_tables(loaded, tmp_path):
    body = "product_id,category\n007,beauty\n"
    import_file(loaded, "product", write(tmp_path, "products.csv", body), as_of=AS_OF)

    with pytest.raises(LoadRejectedError, match=r"'7' looks like '007' with its leading zeros"):
        import_file(loaded, "product", write(tmp_path, "p2.csv", "product_id,category\n7,beauty\n"))


def test_a_reference_without_its_zeros_names_the_stored_id(loaded, tmp_path):
    body = (
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O1,1,2024-03-01,online,10,10\n"
        "O2,3,2024-03-01,online,10,10\n"
    )
    with pytest.raises(LoadRejectedError) as info:
        import_file(loaded, "orders", write(tmp_path, "orders.csv", body), as_of=AS_OF)

    rejects = info.value.rejects
    assert rejects[["line", "column", "rule"]].values.tolist() == [
        [2, "customer_id", "leading_zeros"],
        [3, "customer_id", "reference"],  # no stored id reads as 3
    ]
    assert rejects["message"].iloc[0] == (
        "'1' looks like '0001' with its leading zeros lost (a spreadsheet does this): "
        "customer '0001' is in the store; re-export with the customer_id column as text"
    )
    assert rows(loaded, "select count(*) from orders") == [(0,)]
