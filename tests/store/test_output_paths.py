"""Output paths: a file where a folder is needed (or the reverse) is refused before any work."""

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from crm_ml.errors import ConfigError
from crm_ml.features import build as feature_build
from crm_ml.features import build_feature_file
from crm_ml.store.export import export_parquet


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_export_into_a_file_is_refused(duckdb_store, tmp_path):
    target = tmp_path / "export"
    target.write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Parquet export .*export is a file, but a folder"):
        export_parquet(duckdb_store, target)
    assert target.read_text(encoding="utf-8") == "keep me"


def test_export_over_a_file_named_like_a_table_writes_nothing(duckdb_store, tmp_path):
    out = tmp_path / "pq"
    out.mkdir()
    (out / "orders").write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Cannot export table orders to .*orders: it is a file"):
        export_parquet(duckdb_store, out, tables=["customer", "orders"])
    assert names(out) == ["orders"]


def test_export_again_replaces_the_tables(duckdb_store, tmp_path):
    out = tmp_path / "pq"
    export_parquet(duckdb_store, out, tables=["customer"])
    export_parquet(duckdb_store, out, tables=["customer"])
    assert names(out) == ["_manifest.json", "customer"]


def _never(*args, **kwargs):
    raise AssertionError("features were built before the path was checked")


def test_feature_file_over_a_folder_is_refused_before_any_work(duckdb_store, tmp_path, monkeypatch):
    monkeypatch.setattr(feature_build, "customer_features", _never)
    (tmp_path / "features.parquet").mkdir()
    with pytest.raises(ConfigError, match=r"feature file .*features\.parquet: it is a folder"):
        build_feature_file(duckdb_store, "2025-01-01", tmp_path / "features.parquet")


def test_feature_file_in_a_folder_that_is_a_file_is_refused(duckdb_store, tmp_path, monkeypatch):
    monkeypatch.setattr(feature_build, "customer_features", _never)
    (tmp_path / "out").write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"out is a file, but a folder is needed"):
        build_feature_file(duckdb_store, "2025-01-01", tmp_path / "out" / "f.parquet")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_feature_file_gets_the_permissions_of_the_umask(duckdb_store, tmp_path, monkeypatch):
    frame = pd.DataFrame({"recency_days": [3]}, index=pd.Index(["c1"], name="customer_id"))
    monkeypatch.setattr(feature_build, "customer_features", lambda *a, **k: frame)
    previous = os.umask(0o022)
    try:
        path = build_feature_file(duckdb_store, "2025-01-01", tmp_path / "f.parquet")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert names(tmp_path) == ["crm.duckdb", "f.parquet"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing a shared file"])
def test_private_feature_file_is_the_owners_only_under_a_lax_umask(
    duckdb_store, tmp_path, monkeypatch, existing
):
    frame = pd.DataFrame({"recency_days": [3]}, index=pd.Index(["c1"], name="customer_id"))
    monkeypatch.setattr(feature_build, "customer_features", lambda *a, **k: frame)
    target = tmp_path / "f.parquet"
    if existing:
        target.write_bytes(b"old")
        target.chmod(0o644)
    previous = os.umask(0o000)
    try:
        path = build_feature_file(duckdb_store, "2025-01-01", target, private=True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pd.read_parquet(path)["recency_days"].tolist() == [3]
