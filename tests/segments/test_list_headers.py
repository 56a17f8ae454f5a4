"""Written lists are headed in the retention team's language; code reads them back by name."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from analysis_rows import order
from customer_helpers import D1, T0, add_customers, features
from sqlalchemy import insert, select

from crm_ml.errors import ValidationError
from crm_ml.segments import ExportSummary, Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.headers import LIST_COLUMNS, LIST_HEADERS, read_list
from crm_ml.segments.lists import suggest_action
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerIdentity, CustomerOwner, ExportLog, Order, Score

SECRET = "list-headers-test-secret-0123456789"
# SMS lists: the phone, not the email; every list then says what the customer spent and when.
ZH_MASKED = "用途,匿名编号,姓名,手机号,负责人编号,负责人,近12个月净消费额,距上次购买天数"
EN_MASKED = "purpose,pseudo_id,name,phone,owner_id,owner_name,revenue_12m,recency_days"
EN_CALL = "Account manager follows up one-to-one by SMS, asks why and offers an exclusive benefit"
# A churn list's columns keep their places; the days since the last purchase come last.
ZH_CHURN = (
    "用途,匿名编号,客户编号,姓名,手机号,负责人编号,负责人,"
    "流失概率,近12个月净消费额,流失风险金额,流失原因,建议动作,距上次购买天数"
)
EN_CHURN = (
    "purpose,pseudo_id,customer_id,name,phone,owner_id,owner_name,"
    "p_churn,revenue_12m,value_at_risk,churn_reasons,suggested_action,recency_days"
)


def _customers(store: Store, consented: list[str]) -> None:
    """c1 (owned by m1, with a phone, spent 500 in May) and c2 (unowned); both scored."""
    add_customers(store, ["c1", "c2"], {"c1": "张三", "c2": "李四"})
    with store.begin() as conn:
        conn.execute(
            insert(CustomerIdentity),
            [{"customer_id": "c1", "kind": "phone", "value": "13812345678", "verified": True,
              "created_at": T0}],
        )  # fmt: skip
        conn.execute(
            insert(CustomerOwner),
            [{"customer_id": "c1", "valid_from": T0, "owner_id": "m1", "owner_name": "周经理"}],
        )
        if consented:
            conn.execute(
                insert(Consent),
                [{"customer_id": c, "channel": "sms", "purpose": "marketing", "updated_at": T0,
                  "status": "granted", "source": "test"} for c in consented],
            )  # fmt: skip
        conn.execute(insert(Score), [_score("c1", 0.9), _score("c2", 0.2)])
        conn.execute(insert(Order), [order("o1", "c1", "2024-05-01", 500.0)])
    save_segment(store, Segment("all", "recency_days >= 0"), actor="t")
    snapshot_segment(store, "all", features(recency_days=[1.0, 2.0]), D1)


def _score(customer_id: str, p: float) -> dict:
    reasons = json.dumps([{"text": "90天未购买", "actionable": True, "contribution": 0.3}])
    return {"model_name": "crm-churn", "as_of": datetime(2024, 5, 31), "customer_id": customer_id,
            "model_version": "1", "probability": p, "band": "high", "scored_at": T0,
            "reasons": reasons}  # fmt: skip


def _export(store: Store, out: Path, **options: object) -> ExportSummary:
    return export_list(
        store, "all", D1, channel="sms", purpose="marketing", out_dir=out, secret=SECRET,
        actor="ana", **options,
        **({"unmask_reason": "test: full data checked"} if options.get("unmask") else {}),
    )  # fmt: skip


def _headers(summary: ExportSummary) -> set[str]:
    """The header line of every written file, as Excel reads it (after the BOM)."""
    lines = set()
    for path in summary.files["path"]:
        raw = Path(path).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # still UTF-8 with BOM, for Excel
        lines.add(raw.decode("utf-8-sig").splitlines()[0])
    return lines


def test_lists_are_headed_in_chinese_by_default(duckdb_store: Store, tmp_path: Path) -> None:
    _customers(duckdb_store, ["c1", "c2"])
    summary = _export(duckdb_store, tmp_path, churn=False)
    assert _headers(summary) == {ZH_MASKED}
    # The Python API keeps the code's names.
    assert list(summary.files.columns[:3]) == ["owner_id", "owner_name", "path"]
    assert summary.files["owner_id"].fillna("").tolist() == ["m1", ""]


def test_english_headers_on_request(duckdb_store: Store, tmp_path: Path) -> None:
    _customers(duckdb_store, ["c1", "c2"])
    assert _headers(_export(duckdb_store, tmp_path, churn=False, language="en")) == {EN_MASKED}


def test_a_header_only_list_is_headed_in_chinese(duckdb_store: Store, tmp_path: Path) -> None:
    _customers(duckdb_store, [])  # nobody consented: the file holds only its header
    summary = _export(duckdb_store, tmp_path, churn=False)
    assert summary.kept == 0 and _headers(summary) == {ZH_MASKED}


@pytest.mark.parametrize(
    ("language", "header", "action"),
    [
        ("zh", ZH_CHURN, "客户经理一对一短信回访，了解原因并提供专属权益"),
        ("en", EN_CHURN, EN_CALL),
    ],
    ids=["zh", "en"],
)
def test_churn_list_headers_and_actions_follow_the_language(
    duckdb_store: Store, tmp_path: Path, language: str, header: str, action: str
) -> None:
    _customers(duckdb_store, ["c1", "c2"])
    summary = _export(duckdb_store, tmp_path, churn=True, unmask=True, language=language)
    assert _headers(summary) == {header}
    rows = pd.concat([read_list(p) for p in summary.files["path"]], ignore_index=True)
    assert tuple(rows.columns) == tuple(c for c in LIST_COLUMNS if c != "email")
    assert rows.set_index("customer_id").loc["c1", "suggested_action"] == action


def test_read_list_gives_the_same_frame_for_either_language(
    duckdb_store: Store, tmp_path: Path
) -> None:
    _customers(duckdb_store, ["c1", "c2"])
    zh = _export(duckdb_store, tmp_path / "zh", churn=False)
    en = _export(duckdb_store, tmp_path / "en", churn=False, language="en")
    for zh_path, en_path in zip(zh.files["path"], en.files["path"], strict=True):
        pd.testing.assert_frame_equal(read_list(zh_path), read_list(en_path))
    first = read_list(en.files["path"].iloc[0])
    assert first.to_dict("records") == [
        {"purpose": "marketing", "pseudo_id": first["pseudo_id"].iloc[0], "name": "张*",
         "phone": "138****5678", "owner_id": "m1", "owner_name": "周经理",
         "revenue_12m": "500.00", "recency_days": "31"}
    ]  # fmt: skip


def test_an_unknown_language_is_refused_before_anything_is_written(
    duckdb_store: Store, tmp_path: Path
) -> None:
    _customers(duckdb_store, ["c1"])
    with pytest.raises(ValidationError, match="Unknown list language 'fr'; expected one of zh, en"):
        _export(duckdb_store, tmp_path / "lists", language="fr")
    assert not (tmp_path / "lists").exists()
    with duckdb_store.connect() as conn:
        assert conn.execute(select(ExportLog)).first() is None


def test_every_list_column_has_one_chinese_header_of_its_own() -> None:
    zh = LIST_HEADERS["zh"]
    assert set(zh) == set(LIST_COLUMNS) == set(LIST_HEADERS["en"])
    assert len(set(zh.values())) == len(zh)  # read_list can tell them apart ...
    assert not set(zh.values()) & set(LIST_COLUMNS)  # ... and from the English ones
    assert all(not h.isascii() for h in zh.values())


def test_suggested_actions_are_in_the_list_language() -> None:
    unscored = pd.Series({"p_churn": float("nan")})
    sms = {"channel": "sms", "purpose": "marketing"}
    assert suggest_action(unscored, 0.0, **sms) == "暂无流失评分：短信常规关怀"
    assert suggest_action(unscored, 0.0, "en", **sms) == "No churn score yet: routine care by SMS"
