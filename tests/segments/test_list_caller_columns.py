"""Every list gives its caller something to say and to sort by, written as a caller reads it.

- Any list: the 12-month net revenue and the days since the last purchase,
  ranked by value; the churn columns too whenever the churn model has scores
  at the list's date. A churn list's columns keep their places.
- Money is written with two decimals; Chinese actions use Chinese punctuation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from analysis_rows import order
from customer_helpers import BEFORE, D1, add_customers, features, sms_consent
from sqlalchemy import insert

from crm_ml.segments import ExportSummary, Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.lists import ACTIONS, PURPOSE_ACTIONS
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerMerge, Order, Score
from crm_ml.tags.files import read_excel_csv

SECRET = "list-caller-columns-secret-0123456789"
NAMES = {"c1": "张三", "c2": "李四", "c3": "王五", "c4": "张三"}
PLAIN = "用途,匿名编号,姓名,手机号,负责人编号,负责人,近12个月净消费额,距上次购买天数"
WITH_CHURN = (
    "用途,匿名编号,姓名,手机号,负责人编号,负责人,"
    "流失概率,近12个月净消费额,流失风险金额,流失原因,建议动作,距上次购买天数"
)


@pytest.fixture
def bought(store: Store) -> Store:
    """c1 last bought 11 days before D1, c2 1.5 days before, c3 never; c4 was merged into c1.

    Segment ``everyone`` (not selecting by churn) holds c1..c3 at D1; no scores yet.
    """
    add_customers(store, list(NAMES), NAMES)
    with store.begin() as conn:
        conn.execute(
            insert(CustomerMerge),
            [{"merged_id": "c4", "surviving_id": "c1", "merged_at": BEFORE, "reason": "dup"}],
        )
        conn.execute(insert(Consent), [sms_consent(c, "granted") for c in ("c1", "c2", "c3")])
        conn.execute(
            insert(Order),
            [
                order("o1", "c1", "2024-04-01", 100.0),
                order("o2", "c4", "2024-05-21", 200.0),  # the merged record's: c1's last order
                order("o3", "c2", "2024-05-30 12:00", 1000.0),  # 1.5 days: shown as 2
                order("o4", "c2", "2024-06-01 00:00", 50.0),  # at the list's date: not yet
            ],
        )
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")
    snapshot_segment(store, "everyone", features(revenue_365d=[0.0, 0.0, 0.0]), D1)
    return store


def _export(store: Store, out: Path, **options: object) -> ExportSummary:
    return export_list(
        store, "everyone", D1, channel="sms", purpose="marketing", out_dir=out,
        secret=SECRET, actor="t", **options,
    )  # fmt: skip


def _written(summary: ExportSummary) -> tuple[set[str], pd.DataFrame]:
    """Every file's header line, and the rows as written (headers as the caller sees them)."""
    headers = {
        Path(p).read_text(encoding="utf-8-sig").splitlines()[0] for p in summary.files["path"]
    }
    rows = pd.concat([read_excel_csv(p) for p in summary.files["path"]], ignore_index=True)
    return headers, rows


def _score(customer_id: str, p: float) -> dict:
    return {"model_name": "crm-churn", "as_of": D1, "customer_id": customer_id,
            "model_version": "1", "probability": p, "band": "high", "scored_at": D1}  # fmt: skip


def test_any_list_says_what_was_spent_and_when(bought: Store, tmp_path: Path) -> None:
    summary = _export(bought, tmp_path)

    headers, rows = _written(summary)
    assert headers == {PLAIN}
    # Ranked by 12-month revenue: the caller starts with who spent most.
    assert rows[["姓名", "近12个月净消费额", "距上次购买天数"]].values.tolist() == [
        ["李*", "1000.00", "2"],
        ["张*", "300.00", "11"],  # with the merged record's orders
        ["王*", "0.00", ""],  # never bought
    ]
    assert summary.follow_up_from is None and "follow-up" not in str(summary)


def test_scores_at_the_date_bring_the_churn_columns_to_any_list(
    bought: Store, tmp_path: Path
) -> None:
    with bought.begin() as conn:
        conn.execute(insert(Score), [_score("c1", 0.9), _score("c2", 0.1)])

    headers, rows = _written(_export(bought, tmp_path / "scored"))
    assert headers == {WITH_CHURN}
    assert rows[["姓名", "流失概率", "流失风险金额", "距上次购买天数"]].values.tolist() == [
        ["张*", "0.9", "270.00", "11"],
        ["李*", "0.1", "100.00", "2"],
        ["王*", "", "", ""],  # no score: after the scored ones
    ]
    assert rows["建议动作"].iloc[2] == "暂无流失评分：短信常规关怀"
    # churn=False leaves the churn columns out, whatever the scores.
    headers, _ = _written(_export(bought, tmp_path / "plain", churn=False))
    assert headers == {PLAIN}


def test_money_is_written_with_two_decimals(bought: Store, tmp_path: Path) -> None:
    with bought.begin() as conn:
        conn.execute(insert(Order), [order("o5", "c3", "2024-05-02", 12022.0)])
        conn.execute(insert(Score), [_score("c3", 0.713)])

    _, rows = _written(_export(bought, tmp_path, churn=True))

    first = rows.iloc[0]
    assert (first["近12个月净消费额"], first["流失风险金额"]) == ("12022.00", "8571.69")


@pytest.mark.parametrize("actions", [ACTIONS, PURPOSE_ACTIONS], ids=["marketing", "other"])
def test_chinese_actions_use_chinese_punctuation(actions: dict[str, dict[str, str]]) -> None:
    for text in (t["zh"] for t in actions.values()):
        assert not set(text) & set(",:;()"), text  # ，：；（） in Chinese text


def test_an_unscored_date_keeps_the_plain_columns_even_with_older_runs_elsewhere(
    bought: Store, tmp_path: Path
) -> None:
    # Scores made after the list's date are not scores of that date.
    with bought.begin() as conn:
        conn.execute(insert(Score), [{**_score("c1", 0.9), "as_of": datetime(2024, 7, 1)}])

    headers, _ = _written(_export(bought, tmp_path))

    assert headers == {PLAIN}
