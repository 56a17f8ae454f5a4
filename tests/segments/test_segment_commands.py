"""The plain functions behind `crm-ml tags ...` and `crm-ml segment ...`."""

from __future__ import annotations

from pathlib import Path

from customer_helpers import D1, add_customers, features
from sqlalchemy import insert

from crm_ml.segments import segment_create_command, segment_export_command, segment_show_command
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
                    "updated_at": D1,
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
        secret="x" * 32,
        actor="ana",
    )
    assert "1 kept, 0 excluded (withdrawn), 1 excluded (no consent)" in exported
