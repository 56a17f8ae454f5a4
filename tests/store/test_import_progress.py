"""The import's progress bar: it covers reading, validating, checking, writing and the commit.

The bar is watched through tqdm itself: ``crm_ml.store.import_bar.tqdm`` is replaced
by a subclass that draws into a buffer and remembers the bar's position and
postfix after every change.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pandas as pd
import pytest
from import_files import write
from tqdm.auto import tqdm

import crm_ml.store.bulk
import crm_ml.store.import_bar
import crm_ml.store.loading
from crm_ml.errors import LoadRejectedError, ValidationError
from crm_ml.store.loading import import_file, import_frame
from crm_ml.store.sources import CSV_STEPS
from crm_ml.store.validation import table_spec

AS_OF = "2025-01-01"
CUSTOMERS = "customer_id,created_at\nC1,2024-01-01\nC2,2024-01-02\n"
ORDERS = """\
order_id,customer_id,ordered_at,channel,gross_amount,net_amount
O1,C1,2024-03-01 09:00:00,online,100,100
O2,C2,2024-03-02 10:00:00,offline,50,50
O3,C1,2024-03-03 11:00:00,online,20,20
"""


class RecordedBar(tqdm):
    """A tqdm bar that draws into ``text`` and records (position, postfix) at every change."""

    made: ClassVar[list[RecordedBar]] = []

    def __init__(self, *args, **kwargs) -> None:
        self.text = io.StringIO()
        self.seen: list[tuple[float, str]] = []
        super().__init__(*args, file=self.text, **kwargs)
        RecordedBar.made.append(self)

    def update(self, n: float | None = 1) -> bool | None:
        drawn = super().update(n)
        self.seen.append((self.n, self.postfix or ""))
        return drawn

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh)
        self.seen.append((self.n, self.postfix))

    @property
    def frames(self) -> list[str]:
        """What a terminal showed, frame by frame."""
        return [f for f in self.text.getvalue().replace("\n", "\r").split("\r") if f.strip()]


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[RecordedBar]:
    """The bars the import draws, recorded."""
    RecordedBar.made = []
    monkeypatch.setattr(crm_ml.store.import_bar, "tqdm", RecordedBar)
    return RecordedBar.made


@pytest.fixture
def with_customers(store, tmp_path):
    """A store on each engine holding the orders' customers."""
    import_file(store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF)
    return store


@pytest.fixture
def duckdb_with_customers(duckdb_store, tmp_path):
    """The same on DuckDB only, for what does not depend on the engine (reading a source)."""
    import_file(duckdb_store, "customer", write(tmp_path, "customers.csv", CUSTOMERS), as_of=AS_OF)
    return duckdb_store


def _import_orders(store, folder, body: str = ORDERS, **options):
    return import_file(
        store, "orders", write(folder, "orders.csv", body), as_of=AS_OF, progress=True, **options
    )


def _postfixes(bar: RecordedBar) -> list[str]:
    names = [postfix for _, postfix in bar.seen]
    return [p for i, p in enumerate(names) if p and (i == 0 or p != names[i - 1])]


def test_the_bar_names_every_phase_in_order_and_only_moves_forward(with_customers, tmp_path, bars):
    _import_orders(with_customers, tmp_path)
    [bar] = bars
    assert _postfixes(bar) == [
        "reading orders.csv",
        "validating 3 rows",
        "checking the store",
        "writing 3 rows",
        "committing",
        "committed",
    ]
    positions = [n for n, _ in bar.seen]
    assert positions == sorted(positions)
    assert bar.n == bar.total
    assert bar.disable  # closed


def test_the_bar_is_not_full_until_the_commit_has_returned(
    with_customers, tmp_path, bars, monkeypatch
):
    at_commit = []
    begin = with_customers.begin

    @contextmanager
    def watched_begin() -> Iterator:
        with begin() as conn:
            yield conn
            # The load's work is done; the transaction commits when this block ends.
            at_commit.append((bars[-1].n, bars[-1].total, bars[-1].postfix))

    monkeypatch.setattr(with_customers, "begin", watched_begin)
    _import_orders(with_customers, tmp_path)
    [(n, total, postfix)] = at_commit
    assert n < total and postfix == "committing"
    [bar] = bars
    assert bar.n == bar.total
    frames = bar.frames
    assert "100%" in frames[-1] and "committed" in frames[-1]
    assert not any("100%" in f for f in frames if "committed" not in f)


def test_the_file_is_read_inside_the_bar_and_moves_it(
    duckdb_with_customers, tmp_path, bars, monkeypatch
):
    during_read = []
    reading = crm_ml.store.loading.read_source

    def watched_read(*args, **kwargs):
        during_read.append([(bar.n, bar.postfix) for bar in bars])
        return reading(*args, **kwargs)

    monkeypatch.setattr(crm_ml.store.loading, "read_source", watched_read)
    _import_orders(duckdb_with_customers, tmp_path)
    assert during_read == [[(0, "reading orders.csv")]]
    [bar] = bars
    read = [n for n, postfix in bar.seen if postfix == "reading orders.csv"]
    assert len(set(read)) == 1 + CSV_STEPS  # the start, then each step of reading a CSV file


def test_a_folder_of_parts_moves_the_bar_part_by_part(duckdb_with_customers, tmp_path, bars):
    folder = tmp_path / "orders"
    frame = pd.read_csv(io.StringIO(ORDERS), dtype=str)
    for number, rows in enumerate([frame.iloc[:2], frame.iloc[2:]]):
        (folder / f"year=2024/part-{number}").mkdir(parents=True)
        rows.to_parquet(folder / f"year=2024/part-{number}/part.parquet")
    import_file(duckdb_with_customers, "orders", folder, as_of=AS_OF, progress=True)
    [bar] = bars
    read = [n for n, postfix in bar.seen if postfix == "reading orders"]
    assert len(set(read)) == 3  # the start, then each of the two parts
    assert bar.n == bar.total


def test_writing_moves_the_bar_batch_by_batch_where_the_engine_writes_in_batches(
    with_customers, tmp_path, bars, monkeypatch
):
    monkeypatch.setattr(crm_ml.store.bulk, "BATCH_ROWS", 1)
    _import_orders(with_customers, tmp_path)
    [bar] = bars
    written = {n for n, postfix in bar.seen if postfix == "writing 3 rows"}
    # The phase's start and end; between them, each batch where the engine writes in batches
    # (DuckDB writes in one statement: in batches it took longer).
    assert len(written) == (2 if with_customers.dialect == "duckdb" else 4)


def test_a_rejected_load_closes_the_bar_short_of_full(with_customers, tmp_path, bars):
    bad = ORDERS.replace("O3,C1,2024-03-03 11:00:00,online", "O3,C9,2024-03-03 11:00:00,online")
    with pytest.raises(LoadRejectedError):
        _import_orders(with_customers, tmp_path, bad)
    [bar] = bars
    assert bar.disable  # closed
    assert bar.n < bar.total and bar.postfix == "checking the store"
    assert not any("100%" in f for f in bar.frames)


def test_an_unreadable_file_closes_the_bar_while_reading(duckdb_with_customers, tmp_path, bars):
    with pytest.raises(ValidationError, match="unknown column"):
        _import_orders(duckdb_with_customers, tmp_path, "order_id,wrong\nO1,x\n")
    [bar] = bars
    assert bar.disable and bar.n == 0 and bar.postfix == "reading orders.csv"


def test_a_frame_import_is_read_inside_the_bar_and_fills_it(duckdb_with_customers, bars):
    frame = pd.read_csv(io.StringIO(ORDERS), dtype=str)
    import_frame(
        duckdb_with_customers, "orders", frame, source="orders", as_of=AS_OF, progress=True
    )
    [bar] = bars
    assert _postfixes(bar)[0] == "reading orders"
    assert bar.n == bar.total


def test_no_bar_is_drawn_when_progress_is_off(duckdb_with_customers, tmp_path, capsys):
    import_file(duckdb_with_customers, "orders", write(tmp_path, "orders.csv", ORDERS), as_of=AS_OF)
    assert "import orders" not in capsys.readouterr().err


def test_the_bar_is_disabled_when_progress_is_off(duckdb_with_customers, tmp_path, bars):
    import_file(duckdb_with_customers, "orders", write(tmp_path, "orders.csv", ORDERS), as_of=AS_OF)
    [bar] = bars
    assert bar.disable and bar.text.getvalue() == ""


@pytest.mark.parametrize("name", ["missing.csv", "orders.xlsx", "empty_folder"])
def test_a_wrong_path_fails_before_the_bar_is_drawn(duckdb_store, tmp_path, bars, name):
    write(tmp_path, "orders.xlsx", "not a table")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(ValidationError, match="Cannot import"):
        import_file(duckdb_store, "orders", tmp_path / name, progress=True)
    assert bars == []


def test_validating_moves_the_bar_column_by_column(with_customers, tmp_path, bars):
    _import_orders(with_customers, tmp_path)
    [bar] = bars
    validated = {n for n, postfix in bar.seen if postfix == "validating 3 rows"}
    # The start, then each column normalized or checked, then the rules across rows.
    assert len(validated) >= len(table_spec("orders").columns) + 2
