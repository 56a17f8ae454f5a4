"""A refused import's message masks personal values; its reject report keeps them in full.

The message goes to stderr, which cron appends to ``reports/cron.log``; the
report is for the person fixing the file (privacy review F7).
"""

import pandas as pd
import pytest
from import_files import write
from project_settings import cli_project, import_files

from crm_ml.cli import main
from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file
from crm_ml.store.rejects import MASKED_NOTE, describe, mask_message

AS_OF = "2025-01-01"
IDENTITY_HEADER = "customer_id,kind,value,created_at\n"
BAD_PHONE = "C1,phone,13102525364x,2024-01-01\n"
STORED_PHONE = "C1,phone,13630645733,2024-01-01\n"
SAME_PHONE_LATER = "C1,phone,13630645733,2024-02-01\n"


@pytest.fixture
def loaded(duckdb_store, tmp_path):
    """A store holding customer C1 and their phone 13630645733."""
    customers = "customer_id,name,created_at\nC1,张三丰,2024-01-01\n"
    import_file(duckdb_store, "customer", write(tmp_path, "c.csv", customers), as_of=AS_OF)
    identity = IDENTITY_HEADER + STORED_PHONE
    import_file(duckdb_store, "customer_identity", write(tmp_path, "i.csv", identity), as_of=AS_OF)
    return duckdb_store


def refused(store, table: str, path) -> LoadRejectedError:
    with pytest.raises(LoadRejectedError) as info:
        import_file(store, table, path, as_of=AS_OF)
    return info.value


def report_text(error: LoadRejectedError) -> str:
    return error.report_path.read_text(encoding="utf-8-sig")


def test_a_bad_phone_is_masked_in_the_message_and_full_in_the_report(loaded, tmp_path):
    error = refused(
        loaded, "customer_identity", write(tmp_path, "ident_bad.csv", IDENTITY_HEADER + BAD_PHONE)
    )

    message = str(error)
    assert "13102525364" not in message
    assert "ident_bad.csv:2 value: '131****5364x' is not a phone number" in message
    assert MASKED_NOTE in message
    assert "13102525364x" in report_text(error)
    assert list(error.rejects["value"]) == ["13102525364x"]


def test_a_stored_identity_given_again_masks_its_key(loaded, tmp_path):
    body = IDENTITY_HEADER + SAME_PHONE_LATER
    error = refused(loaded, "customer_identity", write(tmp_path, "ident_dup.csv", body))

    message = str(error)
    assert "13630645733" not in message
    assert (
        "ident_dup.csv:2 customer_id+kind+value: 'C1 / phone / +861******5733' is already in "
        "the store with a different created_at"
    ) in message
    assert "+8613630645733" in report_text(error)


def test_a_conflicting_free_text_leaves_both_texts_out_of_the_message(loaded, tmp_path):
    header = "event_id,customer_id,event_type,occurred_at,detail\n"
    stored = header + "V1,C1,complaint,2024-01-02,请打我电话13102525364\n"
    import_file(loaded, "behavior_event", write(tmp_path, "ev1.csv", stored), as_of=AS_OF)
    changed = header + "V1,C1,complaint,2024-01-02,戴成 改为 13357921234\n"

    error = refused(loaded, "behavior_event", write(tmp_path, "ev2.csv", changed))

    message = str(error)
    assert "13102525364" not in message and "13357921234" not in message
    assert "戴成" not in message
    assert "with a different detail: behavior_event is append-only" in message
    assert "the store and the file differ in them; see the reject report)" in message
    assert "13357921234" in report_text(error)


def test_the_cli_prints_no_full_phone(tmp_path, monkeypatch, capsys):
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    import_files(tmp_path, {"customer.csv": "customer_id,created_at\nC1,2024-01-01\n"})
    write(tmp_path, "ident_bad.csv", IDENTITY_HEADER + BAD_PHONE)
    capsys.readouterr()

    assert main(["import", "customer_identity", str(tmp_path / "ident_bad.csv")]) != 0

    err = capsys.readouterr().err
    assert "13102525364" not in err
    assert "131****5364x" in err
    assert "13102525364x" in (tmp_path / "ident_bad.rejects.csv").read_text(encoding="utf-8-sig")


@pytest.mark.parametrize(
    ("table", "column", "value", "masked"),
    [
        ("customer", "name", "张三丰", "'张**'"),
        ("customer", "birth_date", "1988-13-16", "'1988-**-**'"),
        ("customer_identity", "value", "zhang.san@example", "'z***@example'"),
        ("customer_identity", "value", "wx_lisi", "'w******'"),
        ("points_ledger", "note", "补偿 13357921234", "'补偿 133****1234'"),
    ],
)
def test_each_personal_column_is_masked(table, column, value, masked):
    message = mask_message(table, column, value, f"{value!r} is not valid")

    assert message == f"{masked} is not valid"


def test_other_columns_and_messages_without_a_table_are_kept():
    rejects = pd.DataFrame(
        {
            "file": ["o.csv"],
            "line": [2],
            "column": ["customer_id"],
            "rule": ["reference"],
            "value": ["C13102525364"],
            "message": ["unknown customer 'C13102525364'"],
        }
    )

    unchanged = "  o.csv:2 customer_id: unknown customer 'C13102525364'"
    assert describe(rejects, table="orders") == unchanged
    named = rejects.assign(column="value", message="'C13102525364' is not a phone number")
    assert "C13102525364" in describe(named)
    assert "'C131****5364' is not a phone number" in describe(named, table="customer_identity")
