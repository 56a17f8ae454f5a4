"""Importing a store's merge log (``customer_merge``) and profile history (``customer_change``).

Both come from a store's export, after ``customer``: the merged customers are
already ``status='merged'`` with ``merged_into`` naming their final survivor.
The customers here: A and B were merged (B first into A, then A into C, so both
now point at C), C and D are active, E was merged with no ``merged_into`` given.
"""

import re

import pandas as pd
import pytest
from import_files import rows, write

from crm_ml.cli import main
from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file
from crm_ml.store.validation import table_spec

CUSTOMERS = (
    "customer_id,status,merged_into,created_at\n"
    "A,merged,C,2024-01-01\n"
    "B,merged,C,2024-01-02\n"
    "C,active,,2024-01-03\n"
    "D,active,,2024-01-04\n"
    "E,merged,,2024-01-05\n"
)
MERGE_HEADER = "merged_id,surviving_id,merged_at,reason,actor\n"
# The log as decided: B into A, later A into C (merged_into of both says C).
MERGES = MERGE_HEADER + (
    "B,A,2024-05-01 10:00:00,duplicate phone,steward\nA,C,2024-06-01 10:00:00,manual merge,\n"
)
CHANGE_HEADER = "change_id,customer_id,field,old_value,new_value,changed_at,actor\n"
CHANGES = CHANGE_HEADER + (
    "k1,C,gender,F,M,2024-07-01 09:00:00,import:b1\nk2,A,city,,上海,2024-07-02 09:00:00,\n"
)


@pytest.fixture
def customers(store, tmp_path):
    import_file(store, "customer", write(tmp_path, "customer.csv", CUSTOMERS))
    return store


def refused(store, tmp_path, table: str, body: str) -> tuple[list[tuple], str]:
    """Import ``body`` into an empty ``table`` and expect a refusal that wrote nothing.

    Returns the reject report's ``file, line, column, rule`` rows and the error message.
    """
    with pytest.raises(LoadRejectedError) as info:
        import_file(store, table, write(tmp_path, f"{table}.csv", body))
    assert rows(store, f"select count(*) from {table}") == [(0,)]  # all or nothing
    frame = info.value.rejects
    report = [tuple(r) for r in frame[["file", "line", "column", "rule"]].itertuples(index=False)]
    report_file = pd.read_csv(tmp_path / f"{table}.rejects.csv", encoding="utf-8-sig")
    assert report_file[["file", "line", "column", "rule"]].values.tolist() == [
        list(r) for r in report
    ]
    return report, str(info.value)


# --------------------------------------------------------------------------- customer_merge


def test_the_merge_log_loads_as_recorded_and_again_changes_nothing(customers, tmp_path):
    path = write(tmp_path, "customer_merge.csv", MERGES)
    first = import_file(customers, "customer_merge", path)
    again = import_file(customers, "customer_merge", path)
    assert (first.inserted, again.inserted, again.unchanged) == (2, 0, 2)
    assert sorted(
        rows(customers, "select merged_id, surviving_id, reason, actor from customer_merge")
    ) == [
        ("A", "C", "manual merge", None),
        ("B", "A", "duplicate phone", "steward"),
    ]
    # Nothing is re-keyed or re-pointed: the customer table is as exported.
    assert sorted(rows(customers, "select customer_id, status, merged_into from customer")) == [
        ("A", "merged", "C"),
        ("B", "merged", "C"),
        ("C", "active", None),
        ("D", "active", None),
        ("E", "merged", None),
    ]


def test_a_merge_already_logged_cannot_be_changed(customers, tmp_path):
    import_file(customers, "customer_merge", write(tmp_path, "m.csv", MERGES))
    body = MERGE_HEADER + "A,D,2024-06-01 10:00:00,manual merge,\n"
    with pytest.raises(
        LoadRejectedError,
        match=r"customer_merge.csv:2 merged_id: 'A' is already in the store with a different "
        r"surviving_id: .*the store has surviving_id C, the file surviving_id D\); a customer "
        r"is merged once and a merge is never undone",
    ):
        import_file(customers, "customer_merge", write(tmp_path, "customer_merge.csv", body))
    assert len(rows(customers, "select * from customer_merge")) == 2


@pytest.mark.parametrize(
    ("line", "column", "rule", "message"),
    [
        ("C,C", "surviving_id", "self_merge", "'C' is the merged customer itself"),
        ("Z,C", "merged_id", "reference", "unknown customer 'Z': .* import customer first"),
        ("A,Z", "surviving_id", "reference", "unknown customer 'Z'"),
        ("D,C", "merged_id", "not_merged", "customer 'D' is active in the store: expected "),
        (
            "A,D",
            "surviving_id",
            "merge_chain",
            r"'D' leads customer A to D \(A -> D\), but the store holds A's records under C "
            r"\(customer.merged_into\): expected a merge log that agrees",
        ),
    ],
)
def test_a_merge_row_the_store_contradicts_is_refused(
    customers, tmp_path, line, column, rule, message
):
    body = MERGE_HEADER + f"{line},2024-06-01,dup,\n"
    report, text = refused(customers, tmp_path, "customer_merge", body)
    assert report == [("customer_merge.csv", 2, column, rule)]
    assert re.search(f"customer_merge.csv:2 {column}: .*{message}", text)


def test_merges_that_form_a_cycle_are_refused(customers, tmp_path):
    # E has no merged_into, so only the cycle through the file's rows is wrong.
    body = MERGE_HEADER + "E,B,2024-06-01,dup,\nB,E,2024-06-01,dup,\n"
    with pytest.raises(LoadRejectedError, match=r"form a cycle \(E -> B -> E\)"):
        import_file(customers, "customer_merge", write(tmp_path, "customer_merge.csv", body))


def test_a_merged_customer_without_merged_into_takes_the_logged_survivor(customers, tmp_path):
    body = MERGE_HEADER + "E,D,2024-06-01,dup,\n"
    result = import_file(customers, "customer_merge", write(tmp_path, "m.csv", body))
    assert result.inserted == 1


def test_a_row_that_agreed_only_through_a_refused_row_is_refused_too(customers, tmp_path):
    # B's merged_into is D. With A -> D, B -> A ends at D and agrees; but A -> D is refused
    # (A's merged_into is C), and without it B -> A -> C ends elsewhere: B is refused too.
    import_file(
        customers,
        "customer",
        write(
            tmp_path,
            "fix.csv",
            "customer_id,status,merged_into,created_at\nB,merged,D,2024-01-02\n",
        ),
    )
    body = MERGE_HEADER + "A,D,2024-06-01,dup,\nB,A,2024-05-01,dup,\nE,C,2024-06-01,dup,\n"
    result = import_file(
        customers, "customer_merge", write(tmp_path, "m.csv", body), max_reject_rate=1.0
    )
    assert (result.inserted, result.rejected) == (1, 2)
    assert rows(customers, "select merged_id from customer_merge") == [("E",)]


def test_the_loader_knows_the_history_tables_as_append_only():
    assert table_spec("customer_merge").kind == "ledger"
    assert table_spec("customer_change").key == ("change_id",)


# --------------------------------------------------------------------------- customer_change


def test_profile_history_loads_as_recorded_and_again_changes_nothing(customers, tmp_path):
    path = write(tmp_path, "customer_change.csv", CHANGES)
    first = import_file(customers, "customer_change", path)
    again = import_file(customers, "customer_change", path)
    assert (first.inserted, again.inserted, again.unchanged) == (2, 0, 2)
    assert sorted(
        rows(
            customers,
            "select change_id, customer_id, field, old_value, new_value, actor "
            "from customer_change",
        )
    ) == [
        ("k1", "C", "gender", "F", "M", "import:b1"),
        ("k2", "A", "city", None, "上海", None),
    ]
    # The changes are history: the customer row is not changed by them.
    assert rows(customers, "select count(*) from customer where gender is not null") == [(0,)]


def test_a_recorded_change_cannot_be_rewritten(customers, tmp_path):
    import_file(customers, "customer_change", write(tmp_path, "c.csv", CHANGES))
    body = CHANGE_HEADER + "k1,C,gender,F,female,2024-07-01 09:00:00,import:b1\n"
    with pytest.raises(
        LoadRejectedError,
        match=r"customer_change.csv:2 change_id: 'k1' is already in the store with a different "
        r"new_value: .*the store and the file differ in them; see the reject report\); the audit "
        r"keeps",
    ):
        import_file(customers, "customer_change", write(tmp_path, "customer_change.csv", body))


@pytest.mark.parametrize(
    ("line", "column", "rule", "message"),
    [
        ("Z,gender,F,M,2024-07-01", "customer_id", "reference", "unknown customer 'Z'"),
        ("C,colour,red,blue,2024-07-01", "field", "allowed", "'colour' is not one of name, gender"),
        ("C,customer_id,C,X,2024-07-01", "field", "allowed", "'customer_id' is not one of"),
        ("C,gender,F,M,2099-01-01", "changed_at", "after_as_of", "'2099-01-01' is after"),
        ("C,gender,F,M,", "changed_at", "required", "a value is required"),
    ],
)
def test_a_change_row_that_breaks_a_rule_is_refused(
    customers, tmp_path, line, column, rule, message
):
    body = CHANGE_HEADER + f"k9,{line},\n"
    report, text = refused(customers, tmp_path, "customer_change", body)
    assert report == [("customer_change.csv", 2, column, rule)]
    assert re.search(f"customer_change.csv:2 {column}: {message}", text)


# --------------------------------------------------------------------------- command line


def test_the_command_line_imports_both_history_tables(tmp_path, monkeypatch, capsys):
    (tmp_path / "crm_ml.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_ML_DATABASE_URL", f"duckdb:///{tmp_path / 'crm.duckdb'}")
    assert main(["init"]) == 0
    for table, body in (
        ("customer", CUSTOMERS),
        ("customer_merge", MERGES),
        ("customer_change", CHANGES),
    ):
        assert main(["import", table, str(write(tmp_path, f"{table}.csv", body))]) == 0
    out = capsys.readouterr().out
    assert "customer_merge ← " in out and "2 inserted" in out
    assert "customer_change ← " in out
