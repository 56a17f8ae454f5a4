"""Segment definitions, snapshots, sizes, overlaps and portraits."""

from __future__ import annotations

import pandas as pd
import pytest
from customer_helpers import D1, D2, add_customers, features
from matplotlib.figure import Figure

from crm_ml.errors import NotFoundError, RuleError, ValidationError
from crm_ml.segments import (
    SEGMENT_TEMPLATES,
    Segment,
    load_segment,
    overlap_matrix,
    plot_portrait,
    save_segment,
    segment_members,
    segment_portrait,
    segment_show_command,
    segment_sizes,
    snapshot_segment,
)
from crm_ml.store import Store

IDS = [f"c{i}" for i in range(1, 6)]


def base(recency: list[float]) -> pd.DataFrame:
    return features(
        recency_days=recency,
        revenue_365d=[100.0, 2000.0, 3000.0, 50.0, 0.0],
        tier_level=[1, 2, 3, 1, 1],
        acquisition_channel=pd.array(["store", "app", "app", "web", None], dtype="str"),
    )


def test_save_checks_rule_and_versions(store: Store) -> None:
    saved = save_segment(store, Segment("lapsed", "recency_days > 60", "流失"), actor="ana")
    assert (saved.version, saved.created_by) == (1, "ana")
    same = save_segment(store, Segment("lapsed", "recency_days > 60", "流失客户"), actor="bo")
    assert same.version == 1
    changed = save_segment(store, Segment("lapsed", "recency_days > 90"), actor="bo")
    assert changed.version == 2 and load_segment(store, "lapsed").rule == "recency_days > 90"
    with pytest.raises(RuleError, match="Did you mean 'revenue_365d'"):
        save_segment(store, Segment("big", "revenue_356d > 1"), actor="bo")
    with pytest.raises(NotFoundError, match="Did you mean 'lapsed'"):
        load_segment(store, "lapsd")
    with pytest.raises(ValidationError, match="segment name"):
        Segment("Bad Name;--", "recency_days > 1")


def test_snapshots_sizes_and_static_segments(store: Store) -> None:
    add_customers(store, IDS)
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="a")
    save_segment(store, Segment("frozen", "recency_days > 60", kind="static"), actor="a")
    for name in ("lapsed", "frozen"):
        snapshot_segment(store, name, base([90, 10, 70, 5, 1]), D1)
        snapshot_segment(store, name, base([1, 80, 100, 65, 1]), D2)
    assert list(segment_members(store, "lapsed", D2)) == ["c2", "c3", "c4"]
    assert list(segment_members(store, "frozen", D2)) == ["c1", "c3"]
    sizes = segment_sizes(store, ["lapsed", "frozen"])
    assert sizes.to_dict(orient="list") == {"lapsed": [2, 3], "frozen": [2, 2]}
    with pytest.raises(NotFoundError, match="no snapshot at 2024-05-01"):
        segment_members(store, "lapsed", "2024-05-01")
    text = segment_show_command(store, "lapsed")
    assert "2024-07-01  3" in text


def test_overlap_matrix(store: Store) -> None:
    add_customers(store, IDS)
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="a")
    save_segment(store, Segment("big", "revenue_365d >= 2000"), actor="a")
    frame = base([90, 10, 70, 5, 1])
    for name in ("lapsed", "big"):
        snapshot_segment(store, name, frame, D1)
    counts = overlap_matrix(store, ["lapsed", "big"], D1)
    assert counts.values.tolist() == [[2, 1], [1, 2]]
    shares = overlap_matrix(store, ["lapsed", "big"], D1, share=True)
    assert shares.loc["lapsed", "big"] == 0.5


def test_templates(store: Store) -> None:
    seg = SEGMENT_TEMPLATES["category_prospects"].instantiate(category="beauty", p_purchase=0.5)
    assert (seg.name, seg.label) == ("beauty_prospects", "美妆潜在购买")
    assert seg.rule == "affinity_beauty >= 0.2 and p_purchase >= 0.5"
    assert save_segment(store, seg, actor="a").version == 1


def test_the_winback_template_leaves_out_recent_buyers_whatever_their_score() -> None:
    from crm_ml.rules import RuleContext, compile_rule

    rule = compile_rule(SEGMENT_TEMPLATES["churn_winback"].instantiate().rule)
    frame = base([4.0, 45.0, 200.0, 90.0, 10.0]).assign(p_churn=[0.9, 0.9, 0.9, 0.9, 0.2])
    frame["revenue_365d"] = [5000.0, 5000.0, 5000.0, 500.0, 5000.0]

    flagged = rule.evaluate(RuleContext(frame))
    # c1 bought 4 days ago: a caller would be asking someone who just bought why they left.
    assert list(frame.index[flagged]) == ["c2", "c3"]


def test_portrait_compares_segment_with_base() -> None:
    frame = base([90, 10, 70, 5, 1])
    flags = pd.DataFrame({"vip": [True, False, True, False, False]}, index=frame.index)
    portrait = segment_portrait(frame, ["c2", "c3"], tag_flags=flags, min_size=1)
    means = portrait[portrait["level"] == "mean"].set_index("feature")
    assert means.loc["revenue_365d", "segment"] == 2500.0
    assert means.loc["revenue_365d", "base"] == 1030.0
    channel = portrait[portrait["feature"] == "acquisition_channel"].set_index("level")
    assert channel.loc["app", ["segment", "base"]].tolist() == [1.0, 0.4]
    tier = portrait[portrait["section"] == "tier"].set_index("level")
    assert tier.loc["1", "segment"] == 0.0
    assert portrait[portrait["section"] == "tag"]["segment"].tolist() == [0.5]
    assert isinstance(plot_portrait(portrait, title="high value"), Figure)


def test_tier_levels_read_as_levels_and_no_tier_as_unknown() -> None:
    # tier_level is a float column (missing: no tier); its shares are labelled 1, 2, not 1.0.
    frame = base([90, 10, 70, 5, 1]).assign(tier_level=[1.0, 2.0, None, 1.0, 1.0])
    tier = (
        segment_portrait(frame, ["c2", "c3"], min_size=1)
        .query("section == 'tier'")
        .set_index("level")
    )
    assert tier["segment"].to_dict() == {"1": 0.0, "2": 0.5, "unknown": 0.5}


def test_an_empty_snapshot_is_recorded_and_told_apart_from_none(store):
    import pandas as pd

    from crm_ml.segments import (
        Segment,
        save_segment,
        segment_members,
        segment_sizes,
        snapshot_segment,
    )

    features = pd.DataFrame(
        {"recency_days": [5.0, 10.0]}, index=pd.Index(["c1", "c2"], name="customer_id")
    )
    save_segment(store, Segment("long_gone", "recency_days > 1000"), actor="t")
    assert len(snapshot_segment(store, "long_gone", features, "2025-01-01")) == 0
    assert len(segment_members(store, "long_gone", "2025-01-01")) == 0
    assert segment_sizes(store, ["long_gone"])["long_gone"].tolist() == [0]


def test_ensure_segments_saves_templates_once_and_refuses_unknown_names(store):
    import pytest

    from crm_ml.errors import NotFoundError
    from crm_ml.segments import ensure_segments, segment_definitions_frame

    first = ensure_segments(store, ["points_reminder"], actor="t")
    again = ensure_segments(store, ["points_reminder"], actor="t")
    assert [s.version for s in first + again] == [1, 1]
    assert list(segment_definitions_frame(store).index) == ["points_reminder"]
    with pytest.raises(NotFoundError, match="No segment or template named 'nope'"):
        ensure_segments(store, ["nope"], actor="t")


def test_features_built_for_another_date_are_refused(store: Store) -> None:
    save_segment(store, Segment("big", "revenue_365d >= 1000"), actor="a")
    frame = base([90, 10, 70, 5, 1])
    frame.attrs["as_of"] = "2024-06-01"  # as customer_features records it
    with pytest.raises(ValidationError, match="built as of 2024-06-01 but are being evaluated"):
        snapshot_segment(store, "big", frame, "2024-07-01")


def test_a_snapshot_leaves_out_erased_customers_and_the_log_says_so(store: Store, caplog) -> None:
    import logging

    from crm_ml.erasure import erase_customer

    add_customers(store, IDS)
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="a")
    save_segment(store, Segment("frozen", "recency_days > 60", kind="static"), actor="a")
    snapshot_segment(store, "frozen", base([90, 10, 70, 5, 1]), D1)  # c1 and c3, frozen
    erase_customer(store, "c3", actor="合规官", reason="ticket DPO-17")
    with caplog.at_level(logging.INFO, logger="crm_ml.segments.members"):
        assert list(snapshot_segment(store, "lapsed", base([1, 80, 100, 65, 1]), D2)) == [
            "c2",
            "c4",
        ]
    assert "1 customer erased on request was left out of the snapshot of segment lapsed" in (
        caplog.text
    )
    assert list(segment_members(store, "lapsed", D2)) == ["c2", "c4"]
    assert list(snapshot_segment(store, "frozen", base([1, 80, 100, 65, 1]), D2)) == ["c1"]
    assert segment_sizes(store, ["lapsed"]).loc[pd.Timestamp(D2), "lapsed"] == 2
