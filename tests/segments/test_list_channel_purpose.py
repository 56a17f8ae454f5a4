"""A list follows the channel and purpose it was cleared for, and shows only what a caller needs.

- Its suggested actions reach customers by its channel: an SMS list tells no
  one to phone anybody (a call is only on a phone list).
- A list for another purpose than marketing suggests no offer, says its
  purpose in its rows and file names, and never takes the marketing list's place.
- Its reasons leave out who the customer is (age band, gender, city tier) and
  their consent for channels; its contact columns are its channel's only.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features
from sqlalchemy import insert, select, update

from crm_ml.features.catalog import feature_list
from crm_ml.models.phrase_templates import topic_of
from crm_ml.segments import ExportSummary, Segment, export_list, save_segment
from crm_ml.segments.headers import read_list
from crm_ml.segments.lists import REASONS_NOT_ON_LISTS, suggest_action
from crm_ml.store import Store
from crm_ml.store.schema import (
    CONSENT_CHANNELS,
    CONSENT_PURPOSES,
    Consent,
    CustomerIdentity,
    CustomerOwner,
    ExportLog,
    Order,
    Score,
)

SECRET = "list-channel-purpose-secret-0123456789"
BEFORE = datetime(2024, 3, 1)
NAMES = {"c1": "张三", "c2": "李四", "c3": "王五"}
REVENUE = {"c1": 9000.0, "c2": 9000.0, "c3": 100.0}
#: c1's stored reasons, strongest first: demographics and consent among them.
C1_REASONS = [
    ("age_band", "年龄段：25岁以下"),
    ("recency", "已166天未购买，平时约每8天购买一次"),
    ("consent_wechat_marketing", "已同意微信营销"),
    ("gender", "性别：女"),
    ("campaign", "近90天未回应营销活动"),
    ("city_tier", "城市等级：1"),
    ("coupons", "近90天领券0张"),
]
SMS_ACTIONS = {
    "zh": {
        "张*": "客户经理一对一短信回访，了解原因并提供专属权益",
        "李*": "客服专员短信回访，了解原因并提供专属权益",
        "王*": "短信关怀问候，推荐相关新品",
    },
    "en": {
        "张*": "Account manager follows up one-to-one by SMS, asks why and offers an exclusive "
        "benefit",
        "李*": "A service agent follows up one-to-one by SMS, asks why and offers an exclusive "
        "benefit",
        "王*": "Check in by SMS and recommend related new products",
    },
}
#: The one-to-one follow-ups of c1 (owned) and c2 (unowned) on a phone list: as before.
PHONE_FOLLOW_UPS = {
    "zh": [
        "客户经理一对一电话回访，了解原因并提供专属权益",
        "客服专员电话回访，了解原因并提供专属权益",
    ],
    "en": [
        "Account manager follows up one-to-one by phone, asks why and offers an exclusive benefit",
        "A service agent follows up one-to-one by phone, asks why and offers an exclusive benefit",
    ],
}
#: One customer of each kind of action (see ``_action_key``), at a high value of 100.
EVERY_KIND = [
    {"p_churn": float("nan")},
    {"p_churn": 0.9, "value_at_risk": 500.0, "owner_id": "m1"},
    {"p_churn": 0.9, "value_at_risk": 500.0},
    {"p_churn": 0.5, "value_at_risk": 1.0, "points_expiring_30d": 200},
    {"p_churn": 0.5, "value_at_risk": 1.0, "discount_share": 0.5},
    {"p_churn": 0.5, "value_at_risk": 1.0},
    {"p_churn": 0.1, "value_at_risk": 1.0},
]
MODES = {
    "sms": ("短信", "SMS"),
    "phone": ("电话", "phone"),
    "email": ("邮件", "email"),
    "wechat": ("企业微信", "WeCom"),
    "app_push": ("App推送", "app push"),
}
OFFERS = {
    "zh": ("权益", "新品", "优惠券", "积分"),
    "en": ("benefit", "product", "coupon", "points"),
}


@pytest.fixture
def risky(duckdb_store: Store) -> Store:
    """c1 (owned by m1) and c2 (unowned) hold the value at risk, c3 little; all at p_churn 0.9.

    Everyone granted every channel for every purpose, and has a phone and an email.
    """
    store = duckdb_store
    add_customers(store, list(NAMES), NAMES)
    with store.begin() as conn:
        conn.execute(
            insert(Consent),
            [{"customer_id": c, "channel": ch, "purpose": p, "updated_at": BEFORE,
              "status": "granted", "source": "test"}
             for c in NAMES for ch in CONSENT_CHANNELS for p in CONSENT_PURPOSES],
        )  # fmt: skip
        conn.execute(
            insert(CustomerIdentity),
            [{"customer_id": c, "kind": kind, "value": value, "verified": True,
              "created_at": BEFORE}
             for i, c in enumerate(NAMES, start=1)
             for kind, value in [("phone", f"+861380000000{i}"), ("email", f"z{i}@example.com")]],
        )  # fmt: skip
        conn.execute(
            insert(CustomerOwner),
            [{"customer_id": c, "valid_from": BEFORE, "owner_id": "m1", "owner_name": "周经理"}
             for c in ("c1", "c3")],
        )  # fmt: skip
        conn.execute(
            insert(Order),
            [{"order_id": f"o-{c}", "customer_id": c, "ordered_at": BEFORE, "channel": "online",
              "gross_amount": v, "discount_amount": 0.0, "net_amount": v}
             for c, v in REVENUE.items()],
        )  # fmt: skip
        conn.execute(insert(Score), [_score(c) for c in NAMES])
    save_segment(store, Segment("risky", "p_churn >= 0.6"), actor="t")
    return store


def _score(customer_id: str) -> dict:
    reasons = [{"feature": f, "text": t, "actionable": False, "direction": "raises",
                "contribution": 0.1} for f, t in C1_REASONS]  # fmt: skip
    return {"model_name": "crm-churn", "as_of": datetime(2024, 5, 31), "customer_id": customer_id,
            "model_version": "1", "probability": 0.9, "band": "high", "scored_at": BEFORE,
            "reasons": json.dumps(reasons, ensure_ascii=False)}  # fmt: skip


def _export(store: Store, out: Path, **options: str) -> ExportSummary:
    chosen = {"channel": "sms", "purpose": "marketing", **options}
    return export_list(
        store, "risky", D1, out_dir=out, secret=SECRET, actor="t", churn=True,
        features=features(revenue_365d=[0.0] * 3), **chosen,
    )  # fmt: skip


def _rows(summary: ExportSummary) -> pd.DataFrame:
    """Every row of the export's files, by masked name, with the code's column names."""
    return pd.concat([read_list(p) for p in summary.files["path"]]).set_index("name")


def _names(summary: ExportSummary) -> list[str]:
    return sorted(Path(p).name for p in summary.files["path"])


def _status(store: Store) -> dict[str, str]:
    """``export_id -> status``, with the time of a replacement left out."""
    with store.connect() as conn:
        rows = conn.execute(select(ExportLog.export_id, ExportLog.status)).all()
    return {i: "replaced" if s.startswith("replaced by") else s for i, s in rows}


# ---------------------------------------------------------------- F1: actions follow the channel


@pytest.mark.parametrize("language", ["zh", "en"])
def test_an_sms_list_tells_no_one_to_phone_a_phone_list_does(
    risky: Store, tmp_path: Path, language: str
) -> None:
    sms = _rows(_export(risky, tmp_path / "sms", language=language))
    assert sms["suggested_action"].to_dict() == SMS_ACTIONS[language]
    phone = _rows(_export(risky, tmp_path / "phone", channel="phone", language=language))
    assert phone.loc[["张*", "李*"], "suggested_action"].tolist() == PHONE_FOLLOW_UPS[language]


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("channel", CONSENT_CHANNELS)
def test_only_a_phone_list_suggests_a_phone_call(channel: str, language: str) -> None:
    actions = [
        suggest_action(pd.Series(row), 100.0, language, channel=channel, purpose="marketing")
        for row in EVERY_KIND
    ]
    mode = MODES[channel][0 if language == "zh" else 1]
    assert all(mode in action for action in actions)
    phoned = [a for a in actions if any(w in a for w in ("电话", "phone", "call"))]
    assert bool(phoned) == (channel == "phone")


# ------------------------------------------------------- F2: actions and files follow the purpose


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("purpose", [p for p in CONSENT_PURPOSES if p != "marketing"])
@pytest.mark.parametrize("channel", CONSENT_CHANNELS)
def test_a_list_for_another_purpose_than_marketing_suggests_no_offer(
    channel: str, purpose: str, language: str
) -> None:
    actions = {
        suggest_action(pd.Series(row), 100.0, language, channel=channel, purpose=purpose)
        for row in EVERY_KIND
    }
    assert len(actions) == 1  # one action: the kinds differ only by what they offer
    (action,) = actions
    assert MODES[channel][0 if language == "zh" else 1] in action
    assert not [word for word in OFFERS[language] if word in action]
    assert ("不含营销内容" if language == "zh" else "no marketing content") in action


def test_a_service_list_says_its_purpose_in_its_names_rows_and_actions(
    risky: Store, tmp_path: Path
) -> None:
    summary = _export(risky, tmp_path, purpose="service")
    assert _names(summary) == [
        "risky_20240601_sms_service_owner-m1.csv",
        "risky_20240601_sms_service_unowned.csv",
    ]
    raw = Path(summary.files["path"].iloc[0]).read_text(encoding="utf-8-sig").splitlines()
    assert raw[0].startswith("用途,") and raw[1].startswith("服务,")
    rows = _rows(summary)
    assert set(rows["purpose"]) == {"service"}  # read back as the code, whatever the language
    assert set(rows["suggested_action"]) == {"短信服务关怀回访（不含营销内容）"}


@pytest.mark.parametrize(("language", "label"), [("zh", "营销"), ("en", "marketing")])
def test_a_marketing_list_keeps_its_names_and_says_its_purpose(
    risky: Store, tmp_path: Path, language: str, label: str
) -> None:
    summary = _export(risky, tmp_path, language=language)
    assert _names(summary) == ["risky_20240601_sms_owner-m1.csv", "risky_20240601_sms_unowned.csv"]
    raw = Path(summary.files["path"].iloc[0]).read_text(encoding="utf-8-sig").splitlines()
    assert raw[1].startswith(f"{label},")
    assert set(_rows(summary)["purpose"]) == {"marketing"}


def test_a_service_export_replaces_only_the_earlier_service_set(
    risky: Store, tmp_path: Path
) -> None:
    marketing = _export(risky, tmp_path)
    service = _export(risky, tmp_path, purpose="service")
    again = _export(risky, tmp_path, purpose="service")

    status = _status(risky)
    assert {status[i] for i in marketing.files["export_id"]} == {"written"}
    assert {status[i] for i in service.files["export_id"]} == {"replaced"}
    assert {status[i] for i in again.files["export_id"]} == {"written"}
    assert set(_rows(marketing)["purpose"]) == {"marketing"}  # still the marketing list
    assert len(list(tmp_path.glob("*.csv"))) == 4


def test_a_service_set_named_before_purposes_were_in_names_is_replaced(
    risky: Store, tmp_path: Path
) -> None:
    earlier = _export(risky, tmp_path, purpose="service")
    legacy = []
    with risky.begin() as conn:  # as the export wrote it before: without the purpose
        for export_id, path in zip(earlier.files["export_id"], earlier.files["path"], strict=True):
            named = Path(path).with_name(Path(path).name.replace("_sms_service_", "_sms_"))
            Path(path).rename(named)
            legacy.append(named)
            row = ExportLog.export_id == export_id
            conn.execute(update(ExportLog).where(row).values(path=str(named)))

    later = _export(risky, tmp_path, purpose="service")

    assert {_status(risky)[i] for i in earlier.files["export_id"]} == {"replaced"}
    assert not [path for path in legacy if path.exists()]
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == _names(later)


def test_read_list_reads_lists_written_before_and_after_purposes(
    risky: Store, tmp_path: Path
) -> None:
    before = tmp_path / "old.csv"
    before.write_text(
        "匿名编号,姓名,手机号,邮箱,负责人编号,负责人\nab12,张*,138****0001,,m1,周经理\n"
    )
    assert list(read_list(before).columns) == [
        "pseudo_id", "name", "phone", "email", "owner_id", "owner_name",
    ]  # fmt: skip
    after = _rows(_export(risky, tmp_path / "new", purpose="research", language="en"))
    assert set(after["purpose"]) == {"research"}


# -------------------------------------------------------- F11: minimal reasons and contact columns


def test_list_reasons_leave_out_who_the_customer_is_and_their_consent(
    risky: Store, tmp_path: Path
) -> None:
    rows = _rows(_export(risky, tmp_path))
    # The next reasons fill in: three reasons still, none of them demographic or consent.
    assert rows.loc["张*", "churn_reasons"] == (
        "已166天未购买，平时约每8天购买一次; 近90天未回应营销活动; 近90天领券0张"
    )


def test_every_demographic_and_consent_reason_topic_is_left_out() -> None:
    profile = [f.name for f in feature_list(["profile"])]
    private = [n for n in profile if n in {"age_band", "gender", "city_tier"} or "consent" in n]
    assert len(private) >= 6
    assert {topic_of(name) for name in private} <= REASONS_NOT_ON_LISTS


def test_how_and_when_a_customer_first_came_is_left_out() -> None:
    # 获客渠道：小程序 or 成为客户306天 gives a caller nothing to say or do.
    catalogue = {f.name for f in feature_list(["profile", "value"])}
    assert {"acquisition_channel", "tenure_days"} <= catalogue
    assert {topic_of("acquisition_channel"), topic_of("tenure_days")} <= REASONS_NOT_ON_LISTS


def test_maternity_and_baby_purchase_reasons_are_left_out() -> None:
    # 母婴消费占比87% on a list tells every account manager of a pregnancy or a young child.
    product = [f.name for f in feature_list(["product"])]
    maternity = [n for n in product if n.endswith("maternity_baby")]
    assert len(maternity) == 2
    assert {topic_of(name) for name in maternity} <= REASONS_NOT_ON_LISTS


@pytest.mark.parametrize(
    ("channel", "contacts"),
    [("sms", {"phone"}), ("phone", {"phone"}), ("email", {"email"}), ("wechat", set()),
     ("app_push", set())],
)  # fmt: skip
def test_a_list_carries_the_contact_details_of_its_channel_only(
    risky: Store, tmp_path: Path, channel: str, contacts: set[str]
) -> None:
    rows = _rows(_export(risky, tmp_path, channel=channel))
    assert sorted(rows.index) == ["张*", "李*", "王*"]  # the name stays, masked
    assert {"phone", "email"} & set(rows.columns) == contacts
    if "phone" in contacts:
        assert rows.loc["张*", "phone"] == "138****0001"
    if "email" in contacts:
        assert rows.loc["张*", "email"] == "z***@example.com"
