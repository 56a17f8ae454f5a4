"""generate(): determinism, engines, locales, and its error paths."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_ml.demo import default_truth_path, generate
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store import Store, init_store
from crm_ml.store.schema import SOURCE_TABLES

SMALL = {"n_customers": 150, "start": "2024-01-01", "end": "2024-12-31"}


def _generate(tmp_path, tables_of, name: str, seed: int, **kwargs):
    store = Store(f"duckdb:///{tmp_path / name}", create=True)
    init_store(store)
    summary = generate(store, **{**SMALL, **kwargs}, seed=seed)
    tables = tables_of(store)
    store.dispose()
    return summary, tables


def test_same_seed_gives_identical_tables_and_truth(tmp_path, tables_of):
    first, tables_a = _generate(tmp_path, tables_of, "a.duckdb", seed=5)
    second, tables_b = _generate(tmp_path, tables_of, "b.duckdb", seed=5)
    for name in SOURCE_TABLES:
        pd.testing.assert_frame_equal(tables_a[name], tables_b[name], obj=name)
    pd.testing.assert_frame_equal(first.truth, second.truth)


def test_another_seed_gives_other_tables(tmp_path, tables_of):
    _, tables_a = _generate(tmp_path, tables_of, "a.duckdb", seed=5)
    _, tables_b = _generate(tmp_path, tables_of, "b.duckdb", seed=6)
    assert not tables_a["orders"]["net_amount"].equals(tables_b["orders"]["net_amount"])


def test_chunks_keep_ids_unique_and_cover_everyone(tmp_path, tables_of):
    summary, tables = _generate(tmp_path, tables_of, "chunks.duckdb", seed=3, chunk_size=75)
    assert summary.chunks == 2
    assert tables["customer"]["customer_id"].is_unique
    assert summary.truth["customer_id"].nunique() == 150
    assert tables["orders"]["customer_id"].isin(tables["customer"]["customer_id"]).all()


def test_generates_on_every_engine(store, tmp_path):
    summary = generate(
        store,
        n_customers=60,
        start="2024-01-01",
        end="2024-08-31",
        seed=1,
        truth_path=tmp_path / "truth.parquet",
    )
    assert summary.rows["customer"] >= 60
    assert summary.rows["orders"] > 0
    assert (tmp_path / "truth.parquet").exists()


def test_english_locale(tmp_path, tables_of):
    summary, tables = _generate(tmp_path, tables_of, "en.duckdb", seed=2, locale="en")
    names = tables["customer"]["name"]
    assert names.str.isascii().all()
    assert (
        tables["customer_identity"].query("kind == 'phone'")["value"].str.startswith("+447").all()
    )
    assert (tables["campaign"]["channel"] != "wechat").all()
    assert summary.locale == "en"


def test_refuses_a_store_that_already_has_customers(generated):
    with pytest.raises(ValidationError, match="already holds customers"):
        generate(generated.store, n_customers=10, start="2024-01-01", end="2024-12-31", seed=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_customers": 0}, ValidationError, "at least 1"),
        ({"end": "2024-02-01"}, ValidationError, "at least 120 days"),
        ({"locale": "fr"}, ConfigError, "Unknown locale 'fr'"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, error, match):
    store = Store(f"duckdb:///{tmp_path / 'bad.duckdb'}", create=True)
    init_store(store)
    with pytest.raises(error, match=match):
        generate(store, **{**SMALL, **kwargs}, seed=1)


def test_a_store_without_a_file_needs_a_truth_path():
    with pytest.raises(ConfigError, match="pass truth_path"):
        default_truth_path(Store("postgresql+psycopg://user@localhost/crm"))
    assert (
        default_truth_path(Store("sqlite:////data/crm.db")).as_posix()
        == "/data/crm.db.truth.parquet"
    )
