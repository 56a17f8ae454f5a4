"""Encodings a Chinese export arrives in, and the Excel formats that are not CSV (review L4)."""

import codecs

import pytest
from import_files import rows, write

from crm_ml.cli import build_parser
from crm_ml.errors import ValidationError
from crm_ml.store.loading import import_file

CUSTOMERS = "customer_id,name,created_at\nC1,𠮷昇,2025-01-01\nC2,张䶮,2025-01-01\n"
AS_OF = "2026-01-01"


@pytest.mark.parametrize("spelling", ["gbk", "GBK", "gb18030", "GB18030", "gb2312", "Gb2312"])
def test_every_spelling_of_the_gb_encodings_reads_the_file_as_gb18030(store, tmp_path, spelling):
    path = write(tmp_path, "c.csv", CUSTOMERS, encoding="gb18030")
    assert import_file(store, "customer", path, encoding=spelling, as_of=AS_OF).inserted == 2
    assert rows(store, "select name from customer order by customer_id") == [("𠮷昇",), ("张䶮",)]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["import", "customer", "c.csv", "--encoding", "GB18030"], "gbk"),
        (["import", "customer", "c.csv", "--encoding", "gb2312"], "gbk"),
        (["import", "customer", "c.csv", "--encoding", "UTF8"], "utf-8"),
        (
            [
                "tags",
                "add",
                "vip",
                "--file",
                "f.csv",
                "--actor",
                "a",
                "--reason",
                "r",
                "--encoding",
                "GBK",
            ],
            "gbk",
        ),
    ],
)
def test_the_cli_takes_any_case_of_the_encodings_it_reads(argv, expected):
    assert build_parser().parse_args(argv).encoding == expected


def test_the_cli_names_the_encodings_it_reads(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["import", "customer", "c.csv", "--encoding", "big5"])
    assert "expected utf-8, gbk, gb18030 or gb2312 (any case)" in capsys.readouterr().err


@pytest.mark.parametrize("encoding", [None, "gbk"])
@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE], ids=["le", "be"])
def test_utf16_unicode_text_from_excel_says_how_to_save_it(duckdb_store, tmp_path, bom, encoding):
    codec = "utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be"
    body = bom + CUSTOMERS.replace(",", "\t").encode(codec)
    with pytest.raises(ValidationError) as info:
        import_file(duckdb_store, "customer", write(tmp_path, "c.txt", body), encoding=encoding)
    message = str(info.value)
    assert (
        "c.txt is UTF-16 text (it starts with a UTF-16 byte-order mark), as Excel writes "
        'for "Unicode 文本"'
    ) in message
    assert 'save it as "CSV UTF-8 (逗号分隔)"' in message
    assert "GBK" not in message.split("expected")[0]


def test_a_tab_separated_header_says_how_to_save_it(duckdb_store, tmp_path):
    path = write(tmp_path, "c.csv", CUSTOMERS.replace(",", "\t"))
    with pytest.raises(ValidationError) as info:
        import_file(duckdb_store, "customer", path)
    message = str(info.value)
    assert message.startswith(
        "c.csv:1: the header is separated by tabs ('customer_id\\tname\\tcreated_at'); "
        "expected columns separated by commas."
    )
    assert 'save it as "CSV UTF-8 (逗号分隔)"' in message
    assert "unknown column" not in message
