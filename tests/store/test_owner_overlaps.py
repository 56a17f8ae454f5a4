"""customer_owner imports: one account manager at a time, as merges keep it (rekey)."""

from datetime import datetime

import pytest
from import_files import write
from sqlalchemy import select

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import LoadResult, import_file
from crm_ml.store.rekey import _overlaps
from crm_ml.store.schema import CustomerOwner

AS_OF = "2026-06-01"
HEADER = "customer_id,valid_from,owner_id,owner_name,valid_to\n"


def owners(store) -> list[tuple]:
    o = CustomerOwner
    query = select(o.customer_id, o.valid_from, o.owner_id, o.valid_to).order_by(
        o.customer_id, o.valid_from
    )
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def load(store, folder, body: str, name: str, timezone: str = "UTC") -> LoadResult:
    path = write(folder, name, HEADER + body)
    return import_file(store, "customer_owner", path, as_of=AS_OF, timezone=timezone)


def refused(store, folder, body: str, name: str, timezone: str = "UTC") -> list[dict]:
    with pytest.raises(LoadRejectedError) as info:
        load(store, folder, body, name, timezone)
    frame = info.value.rejects
    return frame[["file", "line", "column", "rule", "value", "message"]].to_dict("records")


@pytest.fixture
def owned(store, tmp_path):
    """0001 with AM001 since 2023-10-01 00:00 UTC (still open); 0002 and 0003 without one."""
    customers = "customer_id,name,created_at\n0001,张三,2023-01-01\n0002,李四,2023-01-01\n"
    customers += "0003,王五,2023-01-01\n"
    import_file(store, "customer", write(tmp_path, "customer.csv", customers), as_of=AS_OF)
    load(store, tmp_path, "0001,2023-10-01 00:00:00,AM001,郭经理,\n", "owners.csv")
    return store


def test_a_close_read_in_the_default_timezone_is_rejected_not_added(owned, tmp_path):
    # The reviewer's case: rows taken from the store (UTC) read as Beijing time, 8 h earlier.
    close = "0001,2023-10-01 00:00:00,AM001,郭经理,2026-01-04 00:00:00\n"

    problems = refused(owned, tmp_path, close, "owner_close.csv", timezone="Asia/Shanghai")

    assert problems == [
        {
            "file": "owner_close.csv",
            "line": 2,
            "column": "valid_from",
            "rule": "overlap",
            "value": "2023-10-01 00:00:00",
            "message": "'2023-10-01 00:00:00' (2023-09-30 16:00 UTC) overlaps the assignment "
            "from 2023-10-01 00:00 UTC (AM001, still open) in the store: a customer has one "
            "account manager at a time, so expected a period that does not overlap it; close "
            "it first (its valid_to) or, to close it, give the same valid_from. Read in "
            "Asia/Shanghai this valid_from is 8 h before the stored one: if the file's times "
            "are UTC, as rows taken from the store are, import it with --timezone UTC",
        }
    ]
    assert owners(owned) == [("0001", datetime(2023, 10, 1), "AM001", None)]


def test_the_same_close_read_in_utc_closes_the_assignment(owned, tmp_path):
    close = "0001,2023-10-01 00:00:00,AM001,郭经理,2026-01-04 00:00:00\n"

    result = load(owned, tmp_path, close, "owner_close.csv")

    assert (result.inserted, result.updated, result.rejected) == (0, 1, 0)
    assert owners(owned) == [("0001", datetime(2023, 10, 1), "AM001", datetime(2026, 1, 4))]


def test_a_new_owner_without_closing_the_old_one_is_rejected(owned, tmp_path):
    problems = refused(owned, tmp_path, "0001,2026-01-04,AM002,邵经理,\n", "owner_new.csv")

    assert [p["message"] for p in problems] == [
        "'2026-01-04' (2026-01-04 00:00 UTC) overlaps the assignment from 2023-10-01 00:00 UTC "
        "(AM001, still open) in the store: a customer has one account manager at a time, so "
        "expected a period that does not overlap it; close it first (its valid_to) or, to "
        "close it, give the same valid_from"
    ]
    assert len(owners(owned)) == 1


def test_a_handover_in_one_file_closes_and_opens(owned, tmp_path):
    handover = "0001,2023-10-01,AM001,郭经理,2026-01-04\n0001,2026-01-04,AM002,邵经理,\n"

    result = load(owned, tmp_path, handover, "handover.csv")

    assert (result.inserted, result.updated, result.rejected) == (1, 1, 0)
    assert owners(owned) == [
        ("0001", datetime(2023, 10, 1), "AM001", datetime(2026, 1, 4)),
        ("0001", datetime(2026, 1, 4), "AM002", None),
    ]


def test_two_rows_of_one_file_that_overlap_are_both_rejected(owned, tmp_path):
    body = "0002,2024-01-01,AM001,郭经理,2024-06-01\n0002,2024-03-01,AM002,邵经理,\n"
    body += "0003,2024-01-01,AM001,郭经理,2024-03-01\n0003,2024-03-01,AM002,邵经理,\n"

    problems = refused(owned, tmp_path, body, "owners2.csv")

    assert [(p["line"], p["message"].split(": ")[0]) for p in problems] == [
        (
            2,
            "'2024-01-01' (2024-01-01 00:00 UTC) overlaps the assignment from 2024-03-01 "
            "00:00 UTC (AM002, still open) on line 3 of this file",
        ),
        (
            3,
            "'2024-03-01' (2024-03-01 00:00 UTC) overlaps the assignment from 2024-01-01 "
            "00:00 UTC (AM001, until 2024-06-01 00:00 UTC) on line 2 of this file",
        ),
    ]


def test_closing_still_works_where_the_store_already_holds_an_overlap(owned, tmp_path):
    # Left by the import before this check: the same assignment twice, 8 h apart.
    from sqlalchemy import insert

    with owned.begin() as conn:
        conn.execute(
            insert(CustomerOwner).values(
                customer_id="0001",
                valid_from=datetime(2023, 9, 30, 16),
                owner_id="AM001",
                valid_to=datetime(2026, 1, 3, 16),
            )
        )

    result = load(owned, tmp_path, "0001,2023-10-01,AM001,郭经理,2026-01-04\n", "close.csv")

    assert (result.updated, result.rejected) == (1, 0)


STORED = (datetime(2024, 1, 1), datetime(2024, 6, 1))


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        (datetime(2023, 6, 1), datetime(2024, 1, 1)),  # ends as the stored one starts
        (datetime(2024, 6, 1), None),  # starts as it ends
        (datetime(2023, 6, 1), datetime(2024, 1, 2)),  # ends a day into it
        (datetime(2024, 3, 1), datetime(2024, 4, 1)),  # inside it
        (datetime(2023, 6, 1), None),  # still open, started before it
    ],
)
def test_overlap_means_what_it_means_on_a_merge(store, tmp_path, valid_from, valid_to):
    customers = "customer_id,name,created_at\n0001,张三,2023-01-01\n"
    import_file(store, "customer", write(tmp_path, "customer.csv", customers), as_of=AS_OF)
    load(store, tmp_path, f"0001,{STORED[0]},AM001,,{STORED[1]}\n", "stored.csv")
    merging = {"valid_from": valid_from, "valid_to": valid_to}
    kept_apart = _overlaps(merging, [{"valid_from": STORED[0], "valid_to": STORED[1]}])

    body = f"0001,{valid_from},AM002,,{valid_to or ''}\n"
    if kept_apart:
        assert refused(store, tmp_path, body, "new.csv")[0]["rule"] == "overlap"
    else:
        assert load(store, tmp_path, body, "new.csv").inserted == 1
