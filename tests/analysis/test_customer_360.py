"""Customer 360: one customer's history as of a date, masked by default."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from analysis_rows import order, refund, ts
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from crm_ml.analysis import customer_360, plot_customer_timeline
from crm_ml.analysis.customer_360 import MIN_SHARED_TEXT
from crm_ml.errors import NotFoundError
from crm_ml.tags import customers_with_tag

AS_OF = "2024-07-01"
REASONS = [
    {"text": "no purchase for 60 days", "actionable": False, "contribution": 0.5},
    {"text": "points expiring soon", "actionable": True, "contribution": 0.2},
]


def _customer(cid: str, created: str, **extra: object) -> dict[str, object]:
    return {
        "customer_id": cid,
        "name": "张三丰",
        "gender": "male",
        "birth_date": ts("1990-07-02"),
        "city": "上海",
        "city_tier": 1,
        "acquisition_channel": "app",
        "is_member": True,
        "member_since": ts(created),
        "status": "active",
        "created_at": ts(created),
        **extra,
    }


def _score(at: str, probability: float, reasons: list[dict[str, object]] | None = None) -> dict:
    return {
        "model_name": "crm-churn",
        "as_of": ts(at),
        "customer_id": "c1",
        "model_version": "3",
        "probability": probability,
        "band": "high" if probability >= 0.6 else "low",
        "reasons": json.dumps(reasons) if reasons else None,
        "scored_at": ts(at),
    }


@pytest.fixture
def history(insert):
    """Customer c1, with rows before and after 2024-07-01 in every table the 360 reads."""
    insert("customer", [_customer("c1", "2024-01-01"), _customer("c9", "2024-08-01")])
    insert(
        "customer_identity",
        [
            {"customer_id": "c1", "kind": "phone", "value": "+8613812345678", "verified": True,
             "created_at": ts("2024-01-01")},
            {"customer_id": "c1", "kind": "email", "value": "zhang@example.com", "verified": False,
             "created_at": ts("2024-01-01")},
        ],
    )  # fmt: skip
    insert(
        "orders",
        [
            order("o1", "c1", "2024-02-01 10:00", 100.0),
            order("o2", "c1", "2024-05-01 10:00", 200.0),
            order("o3", "c1", "2024-07-15 10:00", 999.0),
            order("x1", "c2", "2024-03-01 10:00", 50.0),
        ],
    )
    insert(
        "order_item",
        [refund("o2", 200.0, "2024-05-10", 50.0), refund("o1", 100.0, "2024-07-10", 100.0)],
    )
    insert(
        "points_ledger",
        [
            {"entry_id": "e1", "customer_id": "c1", "posted_at": ts("2024-02-01"), "kind": "earn",
             "points": 100},
            {"entry_id": "e2", "customer_id": "c1", "posted_at": ts("2024-03-01"),
             "kind": "redeem", "points": -30},
            {"entry_id": "e3", "customer_id": "c1", "posted_at": ts("2024-07-02"), "kind": "earn",
             "points": 500},
        ],
    )  # fmt: skip
    insert(
        "tier",
        [
            {"tier_id": "t1", "name": "classic", "level": 1, "min_spend_12m": 0.0},
            {"tier_id": "t2", "name": "silver", "level": 2, "min_spend_12m": 150.0},
        ],
    )
    insert(
        "tier_change",
        [
            {"customer_id": "c1", "changed_at": ts("2024-02-01"), "from_tier": None,
             "to_tier": "t1", "direction": "initial"},
            {"customer_id": "c1", "changed_at": ts("2024-05-01"), "from_tier": "t1",
             "to_tier": "t2", "direction": "up"},
        ],
    )  # fmt: skip
    insert(
        "tag_definition",
        [
            {"tag_id": n, "name": n, "label": label, "category": "value", "kind": "rule",
             "version": 1, "created_at": ts("2024-01-01")}
            for n, label in [("vip", "贵宾"), ("dormant", "沉睡"), ("new", "新客"), ("late", "迟")]
        ],
    )  # fmt: skip
    insert(
        "customer_tag",
        [
            {"customer_id": "c1", "tag_id": "vip", "valid_from": ts("2024-03-01"),
             "valid_to": None, "source": "rule"},
            {"customer_id": "c1", "tag_id": "dormant", "valid_from": ts("2024-02-01"),
             "valid_to": ts("2024-04-01"), "source": "rule"},
            {"customer_id": "c1", "tag_id": "new", "valid_from": ts("2024-06-01"),
             "valid_to": ts("2024-08-01"), "source": "manual"},
            {"customer_id": "c1", "tag_id": "late", "valid_from": ts("2024-07-01"),
             "valid_to": None, "source": "rule"},
        ],
    )  # fmt: skip
    insert(
        "score",
        [
            _score("2024-06-01", 0.2),
            _score("2024-07-01", 0.7, REASONS),
            _score("2024-08-01", 0.1),
        ],
    )
    insert(
        "customer_owner",
        [
            {"customer_id": "c1", "valid_from": ts("2024-01-01"), "owner_id": "m1",
             "owner_name": "王经理", "valid_to": ts("2024-03-01")},
            {"customer_id": "c1", "valid_from": ts("2024-03-01"), "owner_id": "m2",
             "owner_name": "李经理", "valid_to": None},
        ],
    )  # fmt: skip
    insert(
        "consent",
        [
            {"customer_id": "c1", "channel": "sms", "purpose": "marketing",
             "updated_at": ts("2024-01-02"), "status": "granted"},
            {"customer_id": "c1", "channel": "sms", "purpose": "marketing",
             "updated_at": ts("2024-06-15"), "status": "withdrawn"},
            {"customer_id": "c1", "channel": "wechat", "purpose": "service",
             "updated_at": ts("2024-01-02"), "status": "granted"},
            {"customer_id": "c1", "channel": "email", "purpose": "marketing",
             "updated_at": ts("2024-07-02"), "status": "granted"},
        ],
    )  # fmt: skip
    insert(
        "behavior_event",
        [
            {"event_id": "v1", "customer_id": "c1", "event_type": "page_view",
             "occurred_at": ts("2024-03-05")},
            {"event_id": "v2", "customer_id": "c1", "event_type": "complaint",
             "occurred_at": ts("2024-07-05")},
        ],
    )  # fmt: skip
    insert(
        "campaign",
        [{"campaign_id": "k1", "name": "618", "channel": "sms", "start_at": ts("2024-06-01"),
          "end_at": ts("2024-06-30"), "control_share": 0.1}],
    )  # fmt: skip
    insert(
        "campaign_contact",
        [{"campaign_id": "k1", "customer_id": "c1", "contact_group": "treatment",
          "contacted_at": ts("2024-06-02"), "responded": True,
          "responded_at": ts("2024-07-03")}],
    )  # fmt: skip


def test_reads_only_what_happened_before_as_of(store, history):
    view = customer_360(store, "c1", AS_OF)
    assert list(view.orders["order_id"]) == ["o1", "o2"]
    # o2's refund (2024-05-10) is known; o1's (2024-07-10) is not yet.
    assert list(view.orders["refund_amount"]) == [0.0, 50.0]
    assert list(view.points["balance"]) == [100, 70]
    assert list(view.events["event_type"]) == ["page_view"]
    assert list(view.tiers["to_tier"]) == ["classic", "silver"]
    assert list(view.tiers["from_tier"]) == ["—", "classic"]
    assert view.campaigns["responded"].tolist() == [False]
    profile = view.profile["value"]
    assert profile["orders"] == "2"
    assert profile["revenue"] == "250.00"
    assert profile["points_balance"] == "70"
    assert profile["tier"] == "silver"
    assert profile["owner"] == "m2 李经理"
    # 60 days 14 hours since o2: 61, as the features and the reasons (已61天未购买) round it.
    assert profile["recency_days"] == "61"


def test_tags_in_force_at_as_of_come_first(store, history):
    tags = customer_360(store, "c1", AS_OF).tags
    # "late" was applied at as_of itself: in force at it, as customers_with_tag says.
    assert list(tags["tag"]) == ["late", "new", "vip", "dormant"]
    assert list(tags["active"]) == [True, True, True, False]
    assert list(tags["label"]) == ["迟", "新客", "贵宾", "沉睡"]


def test_tags_agree_with_customers_with_tag_at_the_boundaries(store, history, insert):
    insert(
        "customer_tag",
        [{"customer_id": "c1", "tag_id": "dormant", "valid_from": ts("2024-05-01"),
          "valid_to": ts(AS_OF), "source": "rule"}],
    )  # fmt: skip
    tags = customer_360(store, "c1", AS_OF).tags
    shown = set(tags.loc[tags["active"], "tag"])
    held = {
        t for t in ("vip", "dormant", "new", "late") if "c1" in customers_with_tag(store, t, AS_OF)
    }
    assert shown == held == {"late", "new", "vip"}
    ended = tags[(tags["tag"] == "dormant") & (tags["valid_from"] == ts("2024-05-01"))]
    assert ended["valid_to"].tolist() == [pd.Timestamp(AS_OF)]  # ended at as_of: not in force


def test_merged_records_are_listed_whatever_the_merge_date(store, history, insert):
    insert(
        "customer",
        [_customer(c, "2024-01-01", status="merged", merged_into="c1") for c in ("m1", "m2", "m3")],
    )
    insert(
        "customer_merge",
        [{"merged_id": m, "surviving_id": "c1", "merged_at": ts(at), "reason": "same phone"}
         for m, at in [("m1", "2024-03-01"), ("m2", AS_OF), ("m3", "2024-09-01")]],
    )  # fmt: skip
    assert customer_360(store, "c1", AS_OF).profile.loc["merged_records", "value"] == "m1, m2, m3"
    # Asking for a merged-away id shows the person it was merged into, and says so.
    view = customer_360(store, "m2", AS_OF)
    assert (view.customer_id, view.requested_id) == ("c1", "m2")
    merged = view.profile["value"]
    assert (merged["customer_id"], merged["status"]) == ("c1", "active")
    assert merged["requested_id"] == "m2 (merged into c1)"


def test_latest_score_at_or_before_as_of_with_its_reasons(store, history):
    view = customer_360(store, "c1", AS_OF)
    score = view.scores.loc["crm-churn"]
    assert score["probability"] == pytest.approx(0.7)
    assert score["reasons"] == "no purchase for 60 days; points expiring soon"
    assert list(view.reasons["rank"]) == [1, 2]
    assert list(view.reasons["actionable"]) == [False, True]


def test_consent_is_the_latest_decision_and_unknown_without_one(store, history):
    consent = customer_360(store, "c1", AS_OF).consent
    assert consent.loc["sms", "marketing"] == "withdrawn"
    assert consent.loc["wechat", "service"] == "granted"
    assert consent.loc["email", "marketing"] == "unknown"
    assert consent.shape == (5, 3)


def test_owner_history_marks_the_current_owner(store, history):
    owners = customer_360(store, "c1", AS_OF).owners
    assert list(owners["owner_id"]) == ["m1", "m2"]
    assert list(owners["current"]) == [False, True]


def test_personal_data_is_masked_by_default(store, history):
    view = customer_360(store, "c1", AS_OF)
    profile = view.profile["value"]
    assert view.masked
    assert profile["name"] == "张**"
    assert profile["phone"] == "138****5678"
    assert profile["email"] == "z***@example.com"
    assert profile["age"] == "33"
    assert "birth_date" not in profile.index
    shown = view.profile.to_string() + view.identities.to_string()
    assert "13812345678" not in shown and "zhang@" not in shown


def test_unmask_shows_full_values(store, history):
    view = customer_360(store, "c1", AS_OF, unmask=True)
    profile = view.profile["value"]
    assert not view.masked
    assert profile["name"] == "张三丰"
    assert profile["phone"] == "+8613812345678"
    assert profile["birth_date"] == "1990-07-02"


def test_free_text_about_one_person_is_hidden_and_shared_text_shown(store, history, insert):
    # Agents type names and addresses into notes; customers write theirs into complaints.
    complaint = "快递没到，请打我电话13102525364，地址重庆市渝中区解放碑88号，戴成"
    others = [f"o{i}" for i in range(MIN_SHARED_TEXT)]
    insert("customer", [_customer(c, "2024-01-01") for c in others])
    insert(
        "behavior_event",
        [
            {"event_id": "pii1", "customer_id": "c1", "event_type": "complaint",
             "occurred_at": ts("2024-06-01"), "detail": complaint},
            *({"event_id": f"s{c}", "customer_id": c, "event_type": "search",
               "occurred_at": ts("2024-06-02"), "detail": "保温杯"} for c in ["c1", *others]),
        ],
    )  # fmt: skip
    insert(
        "points_ledger",
        [{"entry_id": "e4", "customer_id": "c1", "posted_at": ts("2024-06-03"),
          "kind": "adjust", "points": 200, "note": "补偿 陈雨涵 南京西路88号"}],
    )  # fmt: skip
    masked = customer_360(store, "c1", AS_OF, lang="zh")
    june = masked.events[masked.events["occurred_at"] >= "2024-06-01"]
    assert june["detail"].tolist() == ["（客户填写的文字，已隐藏）", "保温杯"]  # 11 searched it
    note = masked.points.set_index("kind").at["adjust", "note"]
    assert note == "（少于10位客户有此文字，可能含个人信息，已隐藏）"
    full = customer_360(store, "c1", AS_OF, unmask=True)
    assert complaint in full.events["detail"].tolist()
    assert "补偿 陈雨涵 南京西路88号" in full.points["note"].tolist()


def test_timeline_and_figure(store, history):
    view = customer_360(store, "c1", AS_OF)
    counts = view.timeline["kind"].value_counts().to_dict()
    assert counts == {
        "order": 2, "event": 1, "points": 2, "tier": 2, "tag": 5, "campaign": 1, "owner": 2,
        "consent": 3,
    }  # fmt: skip
    assert view.timeline["at"].is_monotonic_increasing
    # Only the tag applied at as_of sits on it; everything else is before.
    at_as_of = view.timeline[view.timeline["at"] == pd.Timestamp(AS_OF)]
    assert at_as_of["what"].tolist() == ["+ late"]
    assert (view.timeline["at"] <= pd.Timestamp(AS_OF)).all()
    assert isinstance(view.figure, Figure)


def test_figure_reaches_as_of_in_the_configured_language(store, history):
    figure = customer_360(store, "c1", "2025-01-01", tz="Asia/Shanghai", lang="zh").figure
    totals = figure.axes[1]
    assert totals.get_ylabel() == "累计消费"
    right = pd.Timestamp(mdates.num2date(totals.get_xlim()[1])).tz_localize(None)
    # Up to as_of in Shanghai time (plus room for markers), not to the last event (2024-08-01).
    assert pd.Timestamp("2025-01-01 08:00") < right < pd.Timestamp("2025-01-15")


def test_timestamps_are_shown_in_the_business_time_zone(store, history):
    view = customer_360(store, "c1", AS_OF, tz="Asia/Shanghai")
    assert view.orders["ordered_at"].iloc[0] == pd.Timestamp("2024-02-01 18:00")
    assert view.profile.loc["first_order_at", "value"] == "2024-02-01 18:00"


def test_empty_history_still_draws(store, insert):
    insert("customer", [_customer("c5", "2024-01-01")])
    view = customer_360(store, "c5", AS_OF)
    assert view.timeline.empty and view.orders.empty
    assert view.profile.loc["orders", "value"] == "0"
    assert isinstance(plot_customer_timeline(view.timeline), Figure)


def test_unknown_customer(store, history):
    with pytest.raises(NotFoundError, match="No customer 'nobody'"):
        customer_360(store, "nobody", AS_OF)


def test_customer_created_after_as_of(store, history):
    with pytest.raises(NotFoundError, match="not before as_of 2024-07-01"):
        customer_360(store, "c9", AS_OF)
