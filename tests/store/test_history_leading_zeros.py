"""Ids of the merge log and profile history that a spreadsheet stripped of their zeros.

A re-saved export turns ``0001`` into ``1``; the history tables refuse such an id
as the customer table does, naming the stored id, instead of "unknown customer".
"""

import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file

CUSTOMERS = (
    "customer_id,status,merged_into,created_at\n"
    "0001,active,,2024-01-01\n"
    "0002,merged,0001,2024-01-02\n"
    "0003,merged,0001,2024-01-03\n"
)
MERGE_HEADER = "merged_id,surviving_id,merged_at,reason\n"
CHANGE_HEADER = "change_id,customer_id,field,old_value,new_value,changed_at,actor\n"


def _message(given: str, stored: str, column: str) -> str:
    return (
        f"'{given}' looks like '{stored}' with its leading zeros lost (a spreadsheet does this): "
        f"customer '{stored}' is in the store; re-export with the {column} column as text"
    )


@pytest.fixture
def customers(store, tmp_path):
    import_file(store, "customer", write(tmp_path, "customer.csv", CUSTOMERS))
    return store


def _rejects(store, tmp_path, table: str, body: str) -> list[list]:
    with pytest.raises(LoadRejectedError) as info:
        import_file(store, table, write(tmp_path, f"{table}.csv", body))
    assert rows(store, f"select count(*) from {table}") == [(0,)]  # all or nothing
    columns = ["file", "line", "column", "rule", "value", "message"]
    return info.value.rejects[columns].values.tolist()


def test_a_merge_log_id_without_its_zeros_names_the_stored_id(customers, tmp_path):
    body = MERGE_HEADER + (
        "2,0001,2024-05-01,dup\n"  # merged_id lost its zeros
        "0003,1,2024-05-01,dup\n"  # surviving_id lost its zeros
        "9,0001,2024-05-01,dup\n"  # no stored id reads as 9: an unknown customer
    )
    assert _rejects(customers, tmp_path, "customer_merge", body) == [
        ["customer_merge.csv", 2, "merged_id", "leading_zeros", "2",
         _message("2", "0002", "merged_id")],
        ["customer_merge.csv", 3, "surviving_id", "leading_zeros", "1",
         _message("1", "0001", "surviving_id")],
        ["customer_merge.csv", 4, "merged_id", "reference", "9",
         "unknown customer '9': no customer.customer_id has this value in the store or this "
         "file; import customer first"],
    ]  # fmt: skip


def test_a_profile_change_id_without_its_zeros_names_the_stored_id(customers, tmp_path):
    body = CHANGE_HEADER + "k1,1,city,,上海,2024-07-01 09:00:00,\n"
    assert _rejects(customers, tmp_path, "customer_change", body) == [
        ["customer_change.csv", 2, "customer_id", "leading_zeros", "1",
         _message("1", "0001", "customer_id")],
    ]  # fmt: skip
    ok = CHANGE_HEADER + "k1,0001,city,,上海,2024-07-01 09:00:00,\n"
    assert import_file(customers, "customer_change", write(tmp_path, "ok.csv", ok)).inserted == 1
