"""The plain functions behind `crm-ml tags ...` and `crm-ml segment ...`."""

from __future__ import annotations

from pathlib import Path

import pytest
from customer_helpers import D1, T0, add_customers, features
from sqlalchemy import insert

from crm_ml.errors import ConfigError, NotFoundError
from crm_ml.segments import (
    load_segment,
    segment_create_command,
    segment_export_command,
    segment_list_command,
    segment_members,
    segment_show_command,
)
from crm_ml.store import Store
from crm_ml.store.schema import Consent
from crm_ml.tags import TagDefinition, save_tag_definition, tags_apply_command, tags_list_command


def test_commands_round_trip(duckdb_store: Store, tmp_path: Path) -> None:
    store = duckdb_store
    add_customers(store, ["c1", "c2", "c3"], {"c1": "张三"})
    with store.begin() as conn:
        conn.execute(
            insert(Consent),
            [
                {
                    "customer_id": "c1",
                    "channel": "wechat",
                    "purpose": "marketing",
                    "updated_at": T0,  # before D1: a decision at D1 itself counts after it
                    "status": "granted",
                }
            ],
        )
    frame = features(recency_days=[90.0, 10.0, 70.0], revenue_365d=[10.0, 0.0, 5.0])
    save_tag_definition(store, TagDefinition("lapsed", "流失", rule="recency_days > 60"))
    text = tags_apply_command(store, D1, features=frame)
    assert "Applied 1 tags as of 2024-06-01" in text and "lapsed" in text
    assert tags_list_command(store, on=D1).loc["lapsed", "members"] == 2
    created = segment_create_command(store, "lapsed_seg", 'tag("lapsed")', actor="ana")
    assert created.startswith("Saved segment lapsed_seg v1 (dynamic)")
    shown = segment_show_command(store, "lapsed_seg", as_of=D1, features=frame)
    assert "members at 2024-06-01: 2" in shown
    exported = segment_export_command(
        store,
        "lapsed_seg",
        D1,
        channel="wechat",
        purpose="marketing",
        out_dir=tmp_path,
        secret="segment-commands-test-key-7c41",
        actor="ana",
    )
    assert "1 kept, 0 excluded (withdrawn), 1 excluded (no consent)" in exported
    written = next(tmp_path.glob("*.csv")).read_text(encoding="utf-8-sig")
    assert written.startswith("用途,匿名编号,姓名,")  # the retention team's language by default
    english = tmp_path / "en"
    segment_export_command(
        store,
        "lapsed_seg",
        D1,
        channel="wechat",
        purpose="marketing",
        out_dir=english,
        secret="segment-commands-test-key-7c41",
        actor="ana",
        language="en",
    )
    assert next(english.glob("*.csv")).read_text(encoding="utf-8-sig").startswith("purpose,")


def test_create_says_which_version_it_saved_and_keeps_an_identical_rule(
    duckdb_store: Store,
) -> None:
    store = duckdb_store
    first = segment_create_command(store, "lapsed", "recency_days > 60", actor="ana", label="流失")
    assert first == "Saved segment lapsed v1 (dynamic): recency_days > 60"
    same = segment_create_command(store, "lapsed", "recency_days > 60", actor="bo")
    assert same.startswith("Segment lapsed is unchanged: v1 (dynamic) already has this rule")
    changed = segment_create_command(store, "lapsed", "recency_days > 90", actor="bo")
    assert changed.splitlines() == [
        "Saved segment lapsed v2 (dynamic): recency_days > 90",
        "  replaces v1 (dynamic): recency_days > 60",
    ]
    assert load_segment(store, "lapsed").label == "流失"  # no --label keeps the stored one
    relabelled = segment_create_command(store, "lapsed", "recency_days > 90", actor="bo", label="x")
    assert relabelled.endswith("label set to 'x'; rule unchanged")
    assert load_segment(store, "lapsed").version == 2


def test_export_takes_the_snapshot_it_needs_and_says_so(
    duckdb_store: Store, tmp_path: Path
) -> None:
    store = duckdb_store
    add_customers(store, ["c1", "c2", "c3"])
    frame = features(recency_days=[90.0, 10.0, 70.0])
    segment_create_command(store, "lapsed", "recency_days > 60", actor="ana")

    def export() -> str:
        return segment_export_command(
            store, "lapsed", D1, channel="sms", purpose="marketing", out_dir=tmp_path,
            secret="segment-commands-test-key-7c41", actor="ana", features=frame,
        )  # fmt: skip

    first = export().splitlines()[0]
    assert first.endswith(
        "1 file(s) with a header only. "
        "No snapshot of lapsed at 2024-06-01 yet: took one with rule v1 (2 members)."
    )
    assert list(segment_members(store, "lapsed", D1)) == ["c1", "c3"]
    assert export().splitlines()[0].endswith("with a header only")  # the snapshot is there now
    segment_create_command(store, "lapsed", "recency_days > 80", actor="ana")
    assert (
        export()
        .splitlines()[0]
        .endswith(
            "The snapshot of lapsed at 2024-06-01 used rule v1: took one with rule v2 (1 members)."
        )
    )
    assert list(segment_members(store, "lapsed", D1)) == ["c1"]


def test_export_without_a_secret_takes_no_snapshot(duckdb_store: Store, tmp_path: Path) -> None:
    store = duckdb_store
    add_customers(store, ["c1"])
    segment_create_command(store, "lapsed", "recency_days > 60", actor="ana")
    with pytest.raises(ConfigError, match="CRM_ML_EXPORT_SECRET"):
        segment_export_command(
            store, "lapsed", D1, channel="sms", purpose="marketing", out_dir=tmp_path,
            secret=None, actor="ana", features=features(recency_days=[90.0]),
        )  # fmt: skip
    with pytest.raises(NotFoundError, match="`crm-ml segment show lapsed --as-of 2024-06-01`"):
        segment_members(store, "lapsed", D1)


def test_segment_list_names_each_segment_with_its_latest_snapshot(duckdb_store: Store) -> None:
    store = duckdb_store
    assert segment_list_command(store).startswith("No segments yet.")
    add_customers(store, ["c1", "c2", "c3"])
    frame = features(recency_days=[90.0, 10.0, 70.0], revenue_365d=[10.0, 0.0, 5.0])
    segment_create_command(store, "lapsed", "recency_days > 60", actor="ana", label="流失客户")
    segment_create_command(store, "nobody", "recency_days > 1000", actor="bo")
    segment_create_command(store, "unused", "revenue_365d > 1", actor="bo")
    for name in ("lapsed", "nobody"):
        segment_show_command(store, name, as_of=D1, features=frame)

    assert segment_list_command(store).splitlines() == [
        "3 segment(s); `crm-ml segment show NAME` shows sizes over time",
        "lapsed 流失客户  v1 (dynamic), by ana; 2 members at 2024-06-01",
        "  rule: recency_days > 60",
        "nobody  v1 (dynamic), by bo; 0 members at 2024-06-01",  # empty, not never snapshotted
        "  rule: recency_days > 1000",
        "unused  v1 (dynamic), by bo; no snapshot yet",
        "  rule: revenue_365d > 1",
    ]
    with pytest.raises(NotFoundError, match=r"List them with `crm-ml segment list`"):
        load_segment(store, "lapsd")
