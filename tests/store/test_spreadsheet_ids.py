"""Ids a spreadsheet reformatted as numbers (``1.38E+10``) are rejected; text ids are kept."""

from pathlib import Path

import pytest
from import_files import write
from sqlalchemy import select, text

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file
from crm_ml.store.normalize import normalize_id
from crm_ml.store.schema import Base

AS_OF = "2025-01-01"
MANGLED = r"looks like a number reformatted by a spreadsheet \(scientific notation\)"


def contents(store) -> dict[str, list[tuple]]:
    with store.connect() as conn:
        return {
            name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
            for name, table in Base.metadata.tables.items()
        }


def refused(store, table: str, path: Path, match: str) -> LoadRejectedError:
    before = contents(store)
    with pytest.raises(LoadRejectedError, match=match) as info:
        import_file(store, table, path, as_of=AS_OF)
    assert contents(store) == before
    return info.value


def problems(error: LoadRejectedError) -> list[tuple]:
    columns = ["line", "column", "rule", "value"]
    return [tuple(r) for r in error.rejects[columns].itertuples(index=False)]


@pytest.mark.parametrize("raw", ["1.38E+10", "1.38e+10", "1E+11", "1.3800138E10", "6.2E-05"])
def test_ids_in_scientific_notation_are_refused(raw):
    with pytest.raises(ValueError, match=MANGLED + "; export ids as text"):
        normalize_id(raw)


@pytest.mark.parametrize("raw", ["000123", "C00000001", "12e45", "1e5", "00001-19970101"])
def test_text_ids_are_kept_as_given(raw):
    # Leading zeros are text, and hexadecimal ids (12e45) have no point or exponent sign.
    assert normalize_id(raw) == raw


def test_mangled_customer_id_is_rejected_and_leading_zeros_load(store, tmp_path):
    body = "customer_id,created_at\n000123,2024-01-01\n1.38E+10,2024-01-01\n"
    error = refused(
        store,
        "customer",
        write(tmp_path, "customer.csv", body),
        r"customer\.csv:3 customer_id: '1\.38E\+10' " + MANGLED,
    )
    assert problems(error) == [(3, "customer_id", "spreadsheet_number", "1.38E+10")]
    import_file(store, "customer", write(tmp_path, "ok.csv", body.rsplit("1.38", 1)[0]))
    with store.connect() as conn:
        assert conn.execute(text("select customer_id from customer")).all() == [("000123",)]


def test_mangled_order_and_customer_ids_are_named_by_column(store, tmp_path):
    import_file(
        store, "customer", write(tmp_path, "c.csv", "customer_id,created_at\nC1,2024-01-01\n")
    )
    body = (
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "2.02E+15,C1,2024-03-01,online,10,10\n"
        "0002,1.38E+10,2024-03-01,online,10,10\n"
    )
    error = refused(store, "orders", write(tmp_path, "orders.csv", body), r"orders\.csv:2 order_id")
    assert [p[:3] for p in problems(error) if p[2] == "spreadsheet_number"] == [
        (2, "order_id", "spreadsheet_number"),
        (3, "customer_id", "spreadsheet_number"),
    ]


def test_mangled_member_card_is_rejected(store, tmp_path):
    import_file(
        store, "customer", write(tmp_path, "c.csv", "customer_id,created_at\nC1,2024-01-01\n")
    )
    body = "customer_id,kind,value,created_at\nC1,member_card,6.22E+18,2024-01-01\n"
    error = refused(
        store,
        "customer_identity",
        write(tmp_path, "ids.csv", body),
        r"ids\.csv:2 value: '\*\.22E\+18' " + MANGLED,
    )
    assert problems(error) == [(2, "value", "member_card", "6.22E+18")]
