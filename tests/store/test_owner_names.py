"""customer_owner imports: one name per owner id, and a warning for owner ids never seen."""

import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import LoadResult, import_file

AS_OF = "2026-06-01"
HEADER = "customer_id,valid_from,owner_id,owner_name,valid_to\n"
ADVICE = (
    "One owner id is one account manager, who receives the list of its customers: give "
    "another person their own owner id, or write the name as expected"
)


def load(store, folder, body: str, name: str = "owners.csv") -> LoadResult:
    path = write(folder, name, HEADER + body)
    return import_file(store, "customer_owner", path, as_of=AS_OF, timezone="UTC")


def refused(store, folder, body: str, name: str = "owners.csv") -> list[dict]:
    with pytest.raises(LoadRejectedError) as info:
        load(store, folder, body, name)
    frame = info.value.rejects
    return frame[["file", "line", "column", "rule", "value", "message"]].to_dict("records")


def owners(store) -> list[tuple]:
    sql = "select customer_id, owner_id, owner_name from customer_owner order by 1, valid_from"
    return rows(store, sql)


@pytest.fixture
def owned(store, tmp_path):
    """0001 with AM001 郭经理 since 2025-01-01; 0002 and 0003 without one."""
    customers = "customer_id,name,created_at\n0001,张三,2023-01-01\n0002,李四,2023-01-01\n"
    customers += "0003,王五,2023-01-01\n"
    import_file(store, "customer", write(tmp_path, "customer.csv", customers), as_of=AS_OF)
    load(store, tmp_path, "0001,2025-01-01,AM001,郭经理,\n", "first.csv")
    return store


def test_an_owner_id_never_seen_is_loaded_with_a_warning_naming_it_and_its_line(owned, tmp_path):
    # The reviewer's typo: a letter l for the 1 of AM001 makes a manager who does not exist.
    body = "0002,2025-06-01,AM0l1,郭经理,\n0003,2025-06-01,AM001,,\n"

    result = load(owned, tmp_path, body)

    assert result.warnings == (
        "1 owner id(s) are new to the store: 'AM0l1' (line 2). Each owner id gets its own "
        "list file of its customers' data when a segment is exported: check that these are "
        "your account managers' ids (a letter l or O for a 1 or 0 makes a new one).",
    )
    assert "  warning: 1 owner id(s) are new to the store: 'AM0l1' (line 2)." in result.summary()
    assert owners(owned) == [
        ("0001", "AM001", "郭经理"),
        ("0002", "AM0l1", "郭经理"),
        ("0003", "AM001", None),
    ]


def test_new_owner_ids_are_named_with_at_most_three_lines_each(owned, tmp_path):
    body = "".join(
        f"000{c},2025-0{m}-01,AM00{c},邵经理,2025-0{m}-15\n" for m in range(1, 5) for c in (2, 3)
    )

    result = load(owned, tmp_path, body)

    (warning,) = result.warnings
    assert warning.startswith(
        "2 owner id(s) are new to the store: 'AM002' (lines 2, 4, 6 …), 'AM003' (lines 3, 5, 7 …)."
    )


def test_an_owner_id_with_another_name_than_the_stored_one_is_refused(owned, tmp_path):
    # The reviewer's file: AM001 is 郭经理 in the store, 王经理 here.
    body = "0002,2025-06-01,AM0l1,郭经理,\n0003,2025-06-01,AM001,王经理,\n"

    problems = refused(owned, tmp_path, body)

    assert problems == [
        {
            "file": "owners.csv",
            "line": 3,
            "column": "owner_name",
            "rule": "owner_name",
            "value": "王经理",
            "message": "'王经理' is not the name of owner AM001: expected '郭经理', as stored "
            f"for it. {ADVICE}",
        }
    ]
    assert owners(owned) == [("0001", "AM001", "郭经理")]


def test_a_new_owner_id_with_two_names_in_one_file_is_refused_on_the_second(owned, tmp_path):
    body = "0002,2025-06-01,AM002,邵经理,\n0003,2025-06-01,AM002, 朱经理 ,\n"

    problems = refused(owned, tmp_path, body)

    assert problems == [
        {
            "file": "owners.csv",
            "line": 3,
            "column": "owner_name",
            "rule": "owner_name",
            "value": " 朱经理 ",
            "message": "' 朱经理 ' is not the name of owner AM002: expected '邵经理', as given "
            f"on line 2 of this file. {ADVICE}",
        }
    ]
    assert owners(owned) == [("0001", "AM001", "郭经理")]


def test_a_reimported_file_is_unchanged_and_warns_no_more(owned, tmp_path):
    body = "0002,2025-06-01,AM002,邵经理,\n"
    first = load(owned, tmp_path, body)

    again = load(owned, tmp_path, body)

    assert first.warnings[0].startswith("1 owner id(s) are new to the store: 'AM002' (line 2).")
    assert (again.inserted, again.unchanged, again.warnings) == (0, 1, ())


def test_an_owner_stored_without_a_name_takes_the_first_name_given(owned, tmp_path):
    load(owned, tmp_path, "0002,2025-01-01,AM002,,\n", "unnamed.csv")
    body = "0003,2025-06-01,AM002,邵经理,2025-09-01\n0003,2025-09-01,AM002,朱经理,\n"

    problems = refused(owned, tmp_path, body)

    assert [(p["line"], p["value"]) for p in problems] == [(3, "朱经理")]
    assert "expected '邵经理', as given on line 2 of this file" in problems[0]["message"]


def test_a_file_without_owner_names_is_checked_for_new_owner_ids_only(owned, tmp_path):
    body = "customer_id,valid_from,owner_id\n0002,2025-06-01,AM001\n0003,2025-06-01,AM009\n"
    path = write(tmp_path, "ids.csv", body)

    result = import_file(owned, "customer_owner", path, as_of=AS_OF, timezone="UTC")

    assert result.inserted == 2
    assert [w[:52] for w in result.warnings] == [
        "1 owner id(s) are new to the store: 'AM009' (line 3)"
    ]
    assert owners(owned) == [
        ("0001", "AM001", "郭经理"),
        ("0002", "AM001", None),
        ("0003", "AM009", None),
    ]


def test_a_first_owner_file_does_not_warn_that_every_id_is_new(store, tmp_path):
    customers = "customer_id,name,created_at\n0001,张三,2023-01-01\n"
    import_file(store, "customer", write(tmp_path, "customer.csv", customers), as_of=AS_OF)

    result = load(store, tmp_path, "0001,2025-01-01,AM001,郭经理,\n")

    assert result.warnings == ()
