from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_ml.errors import ValidationError
from crm_ml.store.cdnow import cdnow_orders, import_cdnow, read_cdnow
from crm_ml.store.schema import Base

MASTER = (
    " customer_id  date number_of_cds  dollar_value\r\n"
    " 00001 19970101  1   11.77\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00002 19970112  5   77.00\r\n"
    " 00002 19970113  2   20.76\r\n"
    " 00003 19970102  1    0.00\r\n"
)
SAMPLE = " 00004 0001 19970101  2   29.33\r\n 00004 0001 19970118  2   29.73\r\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("ascii"))
    return path


def table(store, name: str) -> list[tuple]:
    t = Base.metadata.tables[name]
    with store.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(t)))


def test_read_master_layout(tmp_path):
    records = read_cdnow(write(tmp_path, "master.txt", MASTER))
    assert records["customer_id"].tolist() == ["00001", "00002", "00002", "00002", "00003"]
    assert records["line"].tolist() == [2, 3, 4, 5, 6]
    assert records["cds"].tolist() == [1, 1, 5, 2, 1]
    assert records["ordered_at"].iloc[0] == datetime(1997, 1, 1)


def test_same_day_records_become_one_order(tmp_path):
    orders = cdnow_orders(read_cdnow(write(tmp_path, "master.txt", MASTER)))
    assert orders.values.tolist() == [
        ["00001-19970101", "00001", datetime(1997, 1, 1), 1, 11.77],
        ["00002-19970112", "00002", datetime(1997, 1, 12), 6, 89.0],
        ["00002-19970113", "00002", datetime(1997, 1, 13), 2, 20.76],
        ["00003-19970102", "00003", datetime(1997, 1, 2), 1, 0.0],
    ]


def test_import_master_file(store, tmp_path):
    result = import_cdnow(store, write(tmp_path, "master.txt", MASTER))
    assert (result.records, result.customers, result.orders) == (5, 3, 4)
    assert (result.revenue, result.zero_value_orders) == (121.53, 1)
    customers = [(r[0], r[6], r[7], r[9], r[11]) for r in table(store, "customer")]
    assert customers == [
        ("00001", "web", False, "active", datetime(1997, 1, 1)),
        ("00002", "web", False, "active", datetime(1997, 1, 12)),
        ("00003", "web", False, "active", datetime(1997, 1, 2)),
    ]
    assert table(store, "orders")[1] == (
        "00002-19970112",
        "00002",
        datetime(1997, 1, 12),
        "online",
        None,
        89.0,
        0.0,
        89.0,
    )
    assert [(r[0], r[2], r[3], r[4]) for r in table(store, "order_item")] == [
        ("00001-19970101", "CDNOW-CD", 1, 11.77),
        ("00002-19970112", "CDNOW-CD", 6, 89.0),
        ("00002-19970113", "CDNOW-CD", 2, 20.76),
        ("00003-19970102", "CDNOW-CD", 1, 0.0),
    ]
    assert [r[:3] for r in table(store, "product")] == [("CDNOW-CD", "CD", "music")]
    assert "4 orders (1 of $0), revenue $121.53" in result.summary()


def test_sample_layout_keeps_the_master_id(store, tmp_path):
    result = import_cdnow(store, write(tmp_path, "sample.txt", SAMPLE))
    assert [r[:2] for r in table(store, "orders")] == [
        ("00004-19970101", "00004"),
        ("00004-19970118", "00004"),
    ]
    assert result.customers == 1


def test_importing_twice_inserts_nothing(store, tmp_path):
    path = write(tmp_path, "master.txt", MASTER)
    import_cdnow(store, path)
    again = import_cdnow(store, path)
    assert [load.inserted for load in again.loads] == [0, 0, 0, 0]
    assert [load.unchanged for load in again.loads] == [3, 1, 4, 4]
    assert len(table(store, "orders")) == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (" 00009 19970101  1\r\n", r"bad.txt line 3: expected 4 fields like line 2, got 3"),
        (" 00009 19971301  1   1.00\r\n", r"bad.txt line 3: date '19971301' is not a day"),
        (" 00009 1997011  1   1.00\r\n", r"bad.txt line 3: date '1997011' is invalid"),
        (" 00009 19970101  x   1.00\r\n", r"bad.txt line 3: cds 'x' is invalid"),
        (" 00009 19970101  1   -1.00\r\n", r"bad.txt line 3: dollars '-1.00' is invalid"),
        (" A9 19970101  1   1.00\r\n", r"bad.txt line 3: customer_id 'A9' is invalid"),
    ],
)
def test_malformed_line_is_named_and_nothing_is_written(store, tmp_path, line, message):
    text = MASTER.splitlines(keepends=True)
    path = write(tmp_path, "bad.txt", "".join([*text[:2], line, *text[2:]]))
    with pytest.raises(ValidationError, match=message):
        import_cdnow(store, path)
    assert table(store, "customer") == []


def test_empty_and_non_text_files_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="holds no CDNOW records"):
        read_cdnow(write(tmp_path, "empty.txt", " customer_id date\r\n\r\n"))
    path = tmp_path / "binary.txt"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValidationError, match="not plain ASCII text"):
        read_cdnow(path)


@pytest.mark.cdnow
@pytest.mark.slow
def test_cdnow_sample(store, cdnow_dir):
    result = import_cdnow(store, cdnow_dir / "CDNOW_sample.txt")
    assert (result.records, result.customers, result.orders) == (6919, 2357, 6696)
    assert (result.revenue, result.zero_value_orders) == (244091.94, 8)
    orders = Base.metadata.tables["orders"]
    with store.connect() as conn:
        count, revenue, first, last = conn.execute(
            select(
                func.count(),
                func.sum(orders.c.net_amount),
                func.min(orders.c.ordered_at),
                func.max(orders.c.ordered_at),
            )
        ).one()
        customers = conn.execute(
            select(func.count()).select_from(Base.metadata.tables["customer"])
        ).scalar_one()
    assert (count, customers) == (6696, 2357)
    assert float(revenue) == pytest.approx(244091.94, abs=1e-6)
    assert (first, last) == (datetime(1997, 1, 1), datetime(1998, 6, 30))
