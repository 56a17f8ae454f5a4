"""Loading Spark scores into the score table: Parquet written by pandas, no Spark needed.

The files mimic ``score_on_spark``'s output (a folder of part files and a
``_SUCCESS`` marker); the round trip through Spark itself is in test_spark.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.models.scoring import read_scores
from crm_ml.spark import load_spark_scores
from crm_ml.store import Store
from crm_ml.store.purges import record_purge
from crm_ml.store.schema import Score

AS_OF = pd.Timestamp("2024-10-01")
SCORED_AT = datetime(2024, 10, 2, 6, 30)
REASON = json.dumps([{"feature": "recency_days", "text": "No order for 90 days"}])


def scores(n: int = 5, *, version: str = "3", as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """``n`` customers as score_on_spark writes them: probabilities 0.1, 0.3, 0.5..."""
    p = [round(0.1 + 0.2 * i, 2) for i in range(n)]
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "probability": p,
            "band": ["high" if x >= 0.7 else "medium" if x >= 0.4 else "low" for x in p],
            "reasons": [REASON] * n,
            "model_name": "crm-churn",
            "model_version": version,
            "as_of": as_of,
        }
    )


def spark_folder(path: Path, *parts: pd.DataFrame) -> Path:
    """Write ``parts`` as Spark does: part files, a _SUCCESS marker and .crc files."""
    path.mkdir()
    for i, part in enumerate(parts):
        part.to_parquet(path / f"part-{i:05d}.snappy.parquet", index=False)
        (path / f".part-{i:05d}.snappy.parquet.crc").write_bytes(b"crc")
    (path / "_SUCCESS").touch()
    return path


def stored(store: Store) -> pd.DataFrame:
    with store.connect() as conn:
        rows = conn.execute(select(Score.__table__).order_by("as_of", "customer_id"))
        return pd.DataFrame(rows.mappings().all())


def count_rows(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Score.__table__)).scalar_one())


def test_scores_land_in_the_score_table(store: Store, tmp_path: Path) -> None:
    frame = scores(5)
    folder = spark_folder(tmp_path / "scores", frame.head(3), frame.tail(2))
    summary = load_spark_scores(store, folder, scored_at=SCORED_AT, batch_rows=2)
    got = read_scores(store, model_name="crm-churn", as_of="2024-10-01")
    assert got.index.tolist() == ["C0", "C1", "C2", "C3", "C4"]
    assert got["probability"].tolist() == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert got["band"].tolist() == ["low", "low", "medium", "high", "high"]
    assert got["reasons"].tolist() == [REASON] * 5
    assert set(got["model_version"]) == {"3"}
    assert set(got["scored_at"]) == {SCORED_AT}
    assert summary["customers"].tolist() == [2, 1, 2]
    assert summary["mean_probability"].round(9).tolist() == [0.8, 0.5, 0.2]


def test_reloading_a_date_replaces_its_scores(store: Store, tmp_path: Path) -> None:
    load_spark_scores(store, spark_folder(tmp_path / "first", scores(5)))
    later = scores(1, as_of=pd.Timestamp("2024-11-01"))
    load_spark_scores(store, spark_folder(tmp_path / "later", later))
    # The same date again, from a newer model version and fewer customers.
    load_spark_scores(store, spark_folder(tmp_path / "again", scores(3, version="4")))
    rows = stored(store)
    assert len(rows) == 4
    assert rows["as_of"].tolist() == [datetime(2024, 10, 1)] * 3 + [datetime(2024, 11, 1)]
    assert rows["model_version"].tolist() == ["4", "4", "4", "3"]


def test_scores_of_a_date_a_retention_purge_removed_are_refused(store: Store, tmp_path: Path):
    with store.begin() as conn:
        record_purge(conn, SCORED_AT, datetime(2024, 11, 1), {}, actor="dpo", reason="R-7")
    with pytest.raises(ValidationError, match=r"Cannot make crm-churn scores as of 2024-10-01: "):
        load_spark_scores(store, spark_folder(tmp_path / "scores", scores(5)))
    assert count_rows(store) == 0


def test_a_missing_column_is_refused_and_nothing_changes(store: Store, tmp_path: Path) -> None:
    load_spark_scores(store, spark_folder(tmp_path / "good", scores(5)))
    before = stored(store)
    bad = spark_folder(tmp_path / "bad", scores(2).drop(columns="band"))
    pattern = r"bad: column 'band' is missing; expected text \(string\)\. Found: customer_id"
    with pytest.raises(ValidationError, match=pattern):
        load_spark_scores(store, bad)
    pd.testing.assert_frame_equal(stored(store), before)


def test_a_column_of_the_wrong_type_is_refused(duckdb_store: Store, tmp_path: Path) -> None:
    bad = scores(2).assign(probability=["0.1", "0.3"])
    pattern = r"'probability' has type large_string; expected floating point \(double\)"
    with pytest.raises(ValidationError, match=pattern):
        load_spark_scores(duckdb_store, spark_folder(tmp_path / "bad", bad))


def test_a_bad_row_after_written_batches_leaves_the_table_unchanged(
    store: Store, tmp_path: Path
) -> None:
    load_spark_scores(store, spark_folder(tmp_path / "good", scores(5)))
    before = stored(store)
    broken = scores(5, version="4")
    broken.loc[4, "probability"] = 1.5
    folder = spark_folder(tmp_path / "broken", broken.head(2), broken.tail(3))
    pattern = r"part-00001\.snappy\.parquet, row 3, column 'probability': .* \(found 1\.5\)"
    with pytest.raises(ValidationError, match=pattern):
        load_spark_scores(store, folder, batch_rows=1)
    pd.testing.assert_frame_equal(stored(store), before)


def test_as_of_picks_a_date_or_supplies_a_missing_one(duckdb_store: Store, tmp_path: Path) -> None:
    two_dates = pd.concat([scores(2), scores(3, as_of=pd.Timestamp("2024-11-01"))])
    folder = spark_folder(tmp_path / "appended", two_dates)
    with pytest.raises(ValidationError, match="more than one as_of"):
        load_spark_scores(duckdb_store, folder)
    assert load_spark_scores(duckdb_store, folder, as_of="2024-11-01")["customers"].sum() == 3
    with pytest.raises(ValidationError, match=r"holds as_of 2024-10-01 00:00, 2024-11-01 00:00"):
        load_spark_scores(duckdb_store, folder, as_of="2024-12-01")
    no_date = spark_folder(tmp_path / "no_date", scores(2).drop(columns="as_of"))
    with pytest.raises(ValidationError, match=r"'as_of' is missing; .*\(or pass as_of=\)"):
        load_spark_scores(duckdb_store, no_date)
    load_spark_scores(duckdb_store, no_date, as_of="2024-12-01")
    assert len(read_scores(duckdb_store, model_name="crm-churn", as_of="2024-12-01")) == 2


def test_two_versions_or_a_repeated_customer_are_refused(
    duckdb_store: Store, tmp_path: Path
) -> None:
    mixed = pd.concat([scores(2), scores(3, version="4").tail(1)])
    with pytest.raises(ValidationError, match=r"more than one model_version \('3' and '4'\)"):
        load_spark_scores(duckdb_store, mixed)
    repeated = pd.concat([scores(2), scores(1)])
    with pytest.raises(ValidationError, match="a customer appears more than once"):
        load_spark_scores(duckdb_store, repeated)
    assert count_rows(duckdb_store) == 0


def test_a_missing_folder_says_what_was_expected(duckdb_store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"No scores at .*nowhere: expected the Parquet folder"):
        load_spark_scores(duckdb_store, tmp_path / "nowhere")


def test_rows_of_erased_customers_are_left_out_and_counted(store: Store, tmp_path: Path) -> None:
    from customer_helpers import add_customers

    from crm_ml.erasure import erase_customer

    add_customers(store, [f"C{i}" for i in range(5)])
    erase_customer(store, "C1", actor="合规官", reason="ticket DPO-17")
    erase_customer(store, "C2", actor="合规官", reason="ticket DPO-18")
    frame = scores(5)  # scored before the erasures, or on a session that did not know them
    folder = spark_folder(tmp_path / "scores", frame.head(2), frame.iloc[2:3], frame.tail(2))
    summary = load_spark_scores(store, folder, scored_at=SCORED_AT, batch_rows=2)
    got = read_scores(store, model_name="crm-churn", as_of="2024-10-01")
    assert got.index.tolist() == ["C0", "C3", "C4"]
    assert summary["customers"].sum() == 3
    assert summary.attrs["erased"] == 2
    assert summary.attrs["erased_note"].startswith(
        "2 customers erased on request were left out of the crm-churn scores loaded from "
    )
