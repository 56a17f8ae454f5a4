"""Tag sync: incremental files with a watermark per destination."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, D2, D3, features

from crm_ml.errors import ValidationError
from crm_ml.store import Store
from crm_ml.tags import TagDefinition, apply_tags, read_watermarks, sync_tag

DORMANT = TagDefinition("dormant", "沉睡客户", rule="recency_days > 60")


def recency(*days: float) -> pd.DataFrame:
    return features(recency_days=list(days))


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)


def test_incremental_sync_sends_net_changes(five: Store, tmp_path: Path) -> None:
    apply_tags(five, recency(90, 10, 70, 5, 1), D1, definitions=[DORMANT])
    first = sync_tag(five, "dormant", as_of=D1, out_dir=tmp_path)
    assert (first.since, first.added, first.removed) == (None, 2, 0)
    assert read(first.path)[["customer_id", "change"]].values.tolist() == [
        ["c1", "added"],
        ["c3", "added"],
    ]

    apply_tags(five, recency(3, 80, 100, 5, 1), D2, definitions=[DORMANT])
    # c5 joins and leaves again between syncs: it must not appear.
    apply_tags(five, recency(3, 80, 100, 5, 99), pd.Timestamp("2024-07-15"), definitions=[DORMANT])
    apply_tags(five, recency(3, 80, 100, 70, 1), D3, definitions=[DORMANT])
    second = sync_tag(five, "dormant", as_of=D3, out_dir=tmp_path)
    assert second.since == D1
    rows = read(second.path)
    assert rows[["customer_id", "change"]].values.tolist() == [
        ["c2", "added"],
        ["c4", "added"],
        ["c1", "removed"],
    ]
    assert set(rows["since"]) == {"2024-06-01T00:00:00"}
    assert read_watermarks(tmp_path) == {"dormant": D3}

    again = sync_tag(five, "dormant", as_of=D3, out_dir=tmp_path)
    assert (again.added, again.removed) == (0, 0)
    with pytest.raises(ValidationError, match="Sync forward"):
        sync_tag(five, "dormant", as_of=D2, out_dir=tmp_path)


def test_jsonl_and_full_sync(five: Store, tmp_path: Path) -> None:
    apply_tags(five, recency(90, 10, 70, 5, 1), D1, definitions=[DORMANT])
    sync_tag(five, "dormant", as_of=D1, out_dir=tmp_path, fmt="jsonl")
    full = sync_tag(five, "dormant", as_of=D1, out_dir=tmp_path, fmt="jsonl", full=True)
    lines = [json.loads(line) for line in full.path.read_text(encoding="utf-8").splitlines()]
    assert [(r["customer_id"], r["change"], r["since"]) for r in lines] == [
        ("c1", "added", None),
        ("c3", "added", None),
    ]
    assert not list(tmp_path.glob(".*.tmp"))


def test_each_destination_keeps_its_own_watermark(five: Store, tmp_path: Path) -> None:
    apply_tags(five, recency(90, 10, 70, 5, 1), D1, definitions=[DORMANT])
    sync_tag(five, "dormant", as_of=D1, out_dir=tmp_path / "crm")
    other = sync_tag(five, "dormant", as_of=D1, out_dir=tmp_path / "wecom")
    assert other.added == 2


def test_corrupt_state_is_reported(five: Store, tmp_path: Path) -> None:
    (tmp_path / ".crm_ml_tag_sync.json").write_text("{not json", encoding="utf-8")
    apply_tags(five, recency(90, 10, 70, 5, 1), D1, definitions=[DORMANT])
    with pytest.raises(ValidationError, match="unreadable"):
        sync_tag(five, "dormant", as_of=D1, out_dir=tmp_path)
