"""A segment's history: every save that changed it, by whom, with the definition it left."""

from __future__ import annotations

import pytest

from crm_ml.errors import NotFoundError
from crm_ml.segments import Segment, save_segment, segment_history, segment_history_command
from crm_ml.store import Store


def test_each_change_is_kept_with_who_made_it_and_the_rule_it_replaced(store: Store) -> None:
    save_segment(store, Segment("lapsed", "recency_days > 60", "流失"), actor="ana")
    save_segment(store, Segment("lapsed", "recency_days > 60", "流失"), actor="bo")  # unchanged
    save_segment(store, Segment("lapsed", "recency_days > 60", "流失会员"), actor="bo")
    save_segment(store, Segment("lapsed", "recency_days > 90", "流失会员"), actor="cy")
    save_segment(store, Segment("lapsed", "recency_days > 90", None, "static"), actor="cy")
    history = segment_history(store, "lapsed")
    assert history["label"].isna().tolist() == [False, False, False, True]
    history["label"] = history["label"].astype(object).where(history["label"].notna(), None)
    assert list(history.itertuples(index=False, name=None)) == [
        (1, history.changed_at[0], "ana", "created", 1, "dynamic", "流失", "recency_days > 60"),
        (2, history.changed_at[1], "bo", "label", 1, "dynamic", "流失会员", "recency_days > 60"),
        (3, history.changed_at[2], "cy", "rule", 2, "dynamic", "流失会员", "recency_days > 90"),
        (4, history.changed_at[3], "cy", "label, kind", 3, "static", None, "recency_days > 90"),
    ]
    assert history["changed_at"].is_monotonic_increasing


def test_histories_are_kept_per_segment(store: Store) -> None:
    save_segment(store, Segment("a", "recency_days > 60"), actor="ana")
    save_segment(store, Segment("b", "recency_days > 30"), actor="ana")
    save_segment(store, Segment("a", "recency_days > 90"), actor="ana")
    assert list(segment_history(store, "a")["revision"]) == [1, 2]
    assert list(segment_history(store, "b")["rule"]) == ["recency_days > 30"]


def test_an_unknown_segment_has_no_history_but_a_suggestion(store: Store) -> None:
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    with pytest.raises(NotFoundError, match=r"'lapsd'\. Did you mean 'lapsed'\?"):
        segment_history(store, "lapsd")


def test_the_command_reads_each_change_and_its_definition(store: Store) -> None:
    save_segment(store, Segment("lapsed", "recency_days > 60", "流失"), actor="ana")
    save_segment(store, Segment("lapsed", "recency_days > 90", "流失"), actor="bo")
    save_segment(store, Segment("lapsed", "recency_days > 90"), actor="bo")
    lines = segment_history_command(store, "lapsed").splitlines()
    assert lines[0] == "lapsed: 3 recorded change(s)"
    assert lines[-1] == "      v2 (dynamic): recency_days > 90"  # no label: none shown
    assert lines[1].startswith("  #1  ") and lines[1].endswith(" UTC  ana  created")
    assert lines[2] == "      v1 (dynamic)  流失: recency_days > 60"
    assert lines[3].endswith(" UTC  bo  rule")
    assert lines[4] == "      v2 (dynamic)  流失: recency_days > 90"
