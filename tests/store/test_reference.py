"""The import reference page: generated from the importer's specs, complete, and true."""

import csv
import re
from pathlib import Path

import pandas as pd
from import_files import rows

from crm_ml.store import import_file, import_frame
from crm_ml.store.normalizers import CATEGORY_NAMES, NORMALIZERS
from crm_ml.store.reference import (
    REGENERATE,
    example_row,
    import_reference_markdown,
    timestamp_samples,
    word_maps,
)
from crm_ml.store.reference_data import EXAMPLES
from crm_ml.store.validation import IMPORT_TABLES, table_spec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "import.md"

#: Its example needs a customer merged already, which no single example row can give.
NOT_LOADED_ALONE = {"customer_merge"}


def sections(page: str) -> dict[str, str]:
    """The page's ``## `` sections by title."""
    parts = re.split(r"^## (.+)$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def undocumented(page: str) -> list[str]:
    """``table.column`` of every importable column the page has no row for."""
    found = sections(page)
    return [
        f"{table}.{column}"
        for table in IMPORT_TABLES
        for column in table_spec(table).names
        if f"| `{column}` |" not in found.get(table, "")
    ]


def test_docs_page_is_generated_from_the_importer():
    assert DOCS.read_text(encoding="utf-8") == import_reference_markdown(), (
        f"docs/import.md is stale: regenerate it with `{REGENERATE}` from the project folder"
    )


def test_every_importable_table_and_column_is_on_the_page():
    for page, what in ((DOCS.read_text(encoding="utf-8"), "docs/import.md"),
                       (import_reference_markdown(), "the rendered page")):  # fmt: skip
        assert undocumented(page) == [], (
            f"{what} leaves out columns the importer takes; regenerate it with `{REGENERATE}`"
        )
        for table in IMPORT_TABLES:
            assert f"](#{table})" in page, f"{what} has no contents entry for {table}"


def test_a_column_missing_from_the_page_is_named():
    page = import_reference_markdown().replace("| `refunded_at` |", "| refunded_at |")
    assert undocumented(page) == ["order_item.refunded_at"]


def test_load_order_loads_every_referenced_table_first():
    for position, table in enumerate(IMPORT_TABLES):
        earlier = {*IMPORT_TABLES[:position], table}
        targets = {r.target_table for r in table_spec(table).references}
        assert targets <= earlier, f"{table} needs {targets - earlier} loaded before it"


def test_each_table_says_what_to_load_first():
    page = sections(import_reference_markdown())
    assert "- **Load first:** `orders`, `product`" in page["order_item"]
    assert "- **Load first:** `customer`, `store_location`" in page["orders"]
    assert "- **Load first:** nothing" in page["customer"]


def test_every_word_a_normalizer_maps_is_on_the_page():
    page = sections(import_reference_markdown())
    checked = 0
    for table, normalizers in NORMALIZERS.items():
        for normalizer in normalizers.values():
            for words in word_maps(normalizer):
                for stored, synonyms in words.items():
                    for word in synonyms:
                        shown = f"`{word}`" if word else "(blank)"
                        assert shown in page[table], f"{table}: {word!r} → {stored!r} missing"
                        checked += 1
    assert checked > 30  # consent answers and category names at least


def test_a_word_added_to_a_normalizer_lands_on_the_page(monkeypatch):
    monkeypatch.setitem(CATEGORY_NAMES, "化妆品", "beauty")
    product = sections(import_reference_markdown())["product"]
    assert re.search(r"`美妆`, `美妆个护`, `化妆品` → `beauty`", product)


def test_a_new_normalized_column_lands_on_the_page(monkeypatch):
    words = {"沪": "上海", "京": "北京"}

    def city(frame, log, warnings):
        """Map city abbreviations to names."""
        return frame["city"].map(lambda v: words.get(v, v))

    city.__module__ = "crm_ml.store.normalizers"  # only the package's code is followed
    monkeypatch.setitem(NORMALIZERS["customer"], "city", city)
    customer = sections(import_reference_markdown())["customer"]
    row = next(line for line in customer.splitlines() if line.startswith("| `city` |"))
    assert "On import: map city abbreviations to names." in row
    assert "`沪` → `上海`; `京` → `北京`" in row


def test_rules_across_columns_are_quoted_as_the_reject_report_words_them():
    page = sections(import_reference_markdown())
    assert (
        'refused when "refund <value> must be between 0 and the line amount"'
        in (page["order_item"])
    )
    assert "have the wrong sign for their kind" in page["points_ledger"]


def test_timestamp_examples_are_what_the_parser_stores():
    samples = dict(timestamp_samples("Asia/Shanghai"))
    assert samples["2025-03-07 14:05:00"] == "2025-03-07 06:05:00"
    assert samples["2025/3/7 14:05"] == "2025-03-07 06:05:00"
    assert samples["2025-03-07T06:05:00Z"] == "2025-03-07 06:05:00"
    assert samples["07/03/2025 14:05"] is None  # day and month cannot be told apart
    assert "| `2025/3/7 14:05` | `2025-03-07 06:05:00` |" in import_reference_markdown()


def test_examples_name_only_columns_of_their_table():
    assert set(EXAMPLES) == set(IMPORT_TABLES)
    for table, example in EXAMPLES.items():
        spec = table_spec(table)
        assert set(example) <= set(spec.names), f"{table}: {set(example) - set(spec.names)}"
        assert all(example.get(c) for c in spec.required), f"{table} lacks a required value"


def test_every_example_row_loads_in_load_order(duckdb_store, tmp_path):
    for table in IMPORT_TABLES:
        if table in NOT_LOADED_ALONE:
            continue
        row = example_row(table_spec(table))
        path = tmp_path / f"{table}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([row.keys(), row.values()])
        result = import_file(duckdb_store, table, path)
        assert (result.inserted, result.rejected) == (1, 0), result.summary()


def test_a_blank_cell_erases_and_an_absent_column_keeps(duckdb_store):
    """What the page's *Re-importing* section says, on a store."""
    first = pd.DataFrame(
        {
            "customer_id": ["0000001"],
            "gender": ["女"],
            "city": ["杭州"],
            "is_member": ["Y"],
            "created_at": ["2024-01-15 10:30:00"],
        }
    )
    import_frame(duckdb_store, "customer", first)
    import_frame(duckdb_store, "customer", first.assign(city=[""], is_member=[""]))
    import_frame(duckdb_store, "customer", first[["customer_id", "created_at"]])
    stored = rows(duckdb_store, "SELECT gender IS NOT NULL, city, is_member FROM customer")
    assert stored == [(True, None, False)]
    page = sections(import_reference_markdown())["Re-importing: blank cells and absent columns"]
    assert "**A blank cell erases the stored value**" in page
    assert "**A column left out of the file keeps the stored values.**" in page
