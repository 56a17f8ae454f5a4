"""A file with a bad date on one row and a repeated key on others: one report, both problems.

A key holding an unparsed date used to stop the load with a TypeError before any report.
"""

import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file

AS_OF = "2026-06-01"
CONSENT = "customer_id,channel,purpose,updated_at,status,source\n"
OWNER = "customer_id,valid_from,owner_id,owner_name,valid_to\n"


@pytest.fixture
def customers(store, tmp_path):
    body = "customer_id,name,created_at\nC1,张三,2023-01-01\nC2,李四,2023-01-01\n"
    import_file(store, "customer", write(tmp_path, "customer.csv", body), as_of=AS_OF)
    return store


def problems(store, path, table) -> list[tuple]:
    with pytest.raises(LoadRejectedError) as info:
        import_file(store, table, path, as_of=AS_OF, timezone="UTC")
    frame = info.value.rejects
    return list(frame[["file", "line", "column", "rule", "message"]].itertuples(index=False))


def repeated(file: str, key: str, shown: str) -> list[tuple]:
    message = f"'{shown}' appears 2 times in this file (lines 3 … 4); each {key} must be unique"
    return [(file, line, key, "duplicate_key", message) for line in (3, 4)]


@pytest.mark.parametrize(
    ("bad", "rule", "message"),
    [
        ("2026-13-01 10:00", "date", "'2026-13-01 10:00' is not a real date or time"),
        ("", "required", "a value is required"),
    ],
    ids=["odd", "blank"],
)
def test_a_bad_consent_date_and_a_repeated_key_are_both_reported(
    customers, tmp_path, bad, rule, message
):
    body = (
        f"C1,sms,marketing,{bad},withdrawn,cs\n"
        "C1,sms,marketing,2026-02-01 10:00,withdrawn,cs\n"
        "C1,sms,marketing,2026-02-01 10:00,granted,cs\n"
    )
    path = write(tmp_path, "consent.csv", CONSENT + body)

    found = problems(customers, path, "consent")

    key = "customer_id+channel+purpose+updated_at"
    assert found == [
        ("consent.csv", 2, "updated_at", rule, message),
        *repeated("consent.csv", key, "C1 / sms / marketing / 2026-02-01 10:00:00"),
    ]
    assert (tmp_path / "consent.rejects.csv").exists()
    assert rows(customers, "select count(*) from consent") == [(0,)]


def test_a_bad_owner_date_and_a_repeated_key_are_both_reported(customers, tmp_path):
    body = "C2,2025-02-30,AM002,邵经理,\nC1,2025-07-01,AM003,朱经理,\nC1,2025-07-01,AM004,史经理,\n"
    path = write(tmp_path, "owner.csv", OWNER + body)

    found = problems(customers, path, "customer_owner")

    assert found == [
        ("owner.csv", 2, "valid_from", "date", "'2025-02-30' is not a real date or time"),
        *repeated("owner.csv", "customer_id+valid_from", "C1 / 2025-07-01"),
    ]
    assert (tmp_path / "owner.rejects.csv").exists()
    assert rows(customers, "select count(*) from customer_owner") == [(0,)]
