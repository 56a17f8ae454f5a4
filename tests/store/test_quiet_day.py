"""A header-only file is a quiet day: it loads 0 rows with a note (review M3).

A nightly ``crm-ml import coupon … && crm-ml report run …`` used to stop on a day
with no coupons redeemed. A file with no header at all is still an error.
"""

import pandas as pd
import pytest
from import_files import rows, write
from project_settings import cli_project

from crm_ml.cli import main
from crm_ml.errors import ValidationError
from crm_ml.store.loading import import_file

AS_OF = "2026-01-01"
HEADER = "\ufefforder_id,customer_id,ordered_at,channel,gross_amount,net_amount\r\n"


def test_a_header_only_file_loads_nothing_and_says_so(store, tmp_path):
    result = import_file(store, "orders", write(tmp_path, "o.csv", HEADER), progress=True)
    assert (result.rows_read, result.inserted, result.rejected) == (0, 0, 0)
    assert result.warnings == (
        "only a header, no data rows: 0 rows loaded, the store is unchanged. That is expected "
        "on a day with nothing to export (no coupons redeemed, say); otherwise check that the "
        "export finished.",
    )
    assert result.reject_report is None
    # The load is journalled like any other, with its zero counts.
    assert rows(store, "select table_name, rows_read, rows_inserted from load_batch") == [
        ("orders", 0, 0)
    ]
    assert rows(store, "select count(*) from orders") == [(0,)]


def test_a_parquet_file_without_rows_loads_nothing(store, tmp_path):
    path = tmp_path / "o.parquet"
    pd.DataFrame({"coupon_id": pd.Series([], dtype="str")}).to_parquet(path)
    with pytest.raises(ValidationError, match="missing required column"):
        import_file(store, "coupon", path)  # its columns are still checked
    frame = pd.DataFrame(
        {
            c: pd.Series([], dtype="str")
            for c in ("coupon_id", "customer_id", "issued_at", "face_value")
        }
    )
    frame.to_parquet(path)
    assert import_file(store, "coupon", path).warnings[0].startswith("no rows: 0 rows loaded")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", r"o\.csv is empty: expected a header line"),
        (b"\r\n\r\n", r"o\.csv is empty"),
        (b"\xef\xbb\xbf", r"o\.csv is empty"),
        ("订单号,客户\n".encode(), r"unknown column\(s\) \['订单号', '客户'\]"),
    ],
    ids=["zero_bytes", "blank_lines", "bom_only", "unknown_header"],
)
def test_a_file_without_a_header_is_still_refused(duckdb_store, tmp_path, body, match):
    with pytest.raises(ValidationError, match=match):
        import_file(duckdb_store, "orders", write(tmp_path, "o.csv", body))


def test_the_cli_prints_a_summary_of_zeros_and_exits_0(tmp_path, monkeypatch, capsys, caplog):
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    path = write(tmp_path, "coupon.csv", "coupon_id,customer_id,issued_at,face_value,redeemed_at\n")
    assert main(["import", "coupon", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"coupon ← {path}: 0 read, 0 inserted, 0 updated, 0 unchanged, 0 rejected" in out
    assert "coupon.csv: only a header, no data rows: 0 rows loaded" in caplog.text
