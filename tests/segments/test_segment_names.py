"""Segment names: unknown ones raise with the nearest, templates stand for the segment they save."""

from __future__ import annotations

import pytest
from customer_helpers import D1, add_customers, features

from crm_ml.errors import NotFoundError
from crm_ml.segments import (
    Segment,
    check_segment_names,
    ensure_segments,
    overlap_matrix,
    save_segment,
    segment_definitions_frame,
    segment_members,
    segment_sizes,
    snapshot_segment,
    tag_flags,
)
from crm_ml.store import Store
from crm_ml.tags import TagDefinition, save_tag_definition


@pytest.fixture
def lapsed(store: Store) -> Store:
    add_customers(store, ["c1", "c2"])
    save_segment(store, Segment("lapsed", "recency_days > 60"), actor="ana")
    snapshot_segment(store, "lapsed", features(recency_days=[90.0, 10.0]), D1)
    return store


@pytest.mark.parametrize(
    "call",
    [
        lambda s: segment_sizes(s, ["lapsd"]),
        lambda s: segment_members(s, "lapsd", D1),
        lambda s: overlap_matrix(s, ["lapsed", "lapsd"], D1),
    ],
    ids=["segment_sizes", "segment_members", "overlap_matrix"],
)
def test_an_unknown_segment_is_named_with_the_nearest(lapsed: Store, call) -> None:
    with pytest.raises(NotFoundError, match=r"No segment named 'lapsd'\. Did you mean 'lapsed'"):
        call(lapsed)


def test_tag_flags_refuses_an_unknown_tag(store: Store) -> None:
    save_tag_definition(store, TagDefinition("vip", "贵宾", kind="manual"))
    index = features(recency_days=[1.0]).index
    assert tag_flags(store, ["vip"], D1, index)["vip"].tolist() == [False]
    with pytest.raises(NotFoundError, match=r"No tag named 'vpi' is defined\. Did you mean 'vip'"):
        tag_flags(store, ["vip", "vpi"], D1, index)


def test_a_template_stands_for_the_segment_it_is_saved_as(store: Store) -> None:
    names = check_segment_names(store, ["category_prospects", "points_reminder"])
    assert names == ["maternity_baby_prospects", "points_reminder"]
    assert segment_definitions_frame(store).empty  # checking writes nothing
    saved = ensure_segments(store, ["category_prospects", "points_reminder"], actor="t")
    assert [s.name for s in saved] == names
    assert list(segment_definitions_frame(store).loc[names, "version"]) == [1, 1]


def test_a_saved_template_segment_is_not_reset_to_the_defaults(store: Store) -> None:
    edited = Segment("maternity_baby_prospects", "affinity_maternity_baby >= 0.5")
    save_segment(store, edited, actor="ana")
    (again,) = ensure_segments(store, ["category_prospects"], actor="t")
    assert (again.rule, again.version) == ("affinity_maternity_baby >= 0.5", 1)


def test_every_name_is_checked_before_anything_is_saved(store: Store) -> None:
    with pytest.raises(NotFoundError, match="category_prospects \\(saved as maternity_baby"):
        ensure_segments(store, ["points_reminder", "category_prospect"], actor="t")
    assert segment_definitions_frame(store).empty
    save_segment(store, Segment("points_reminder", "points_expiring_30d >= 50"), actor="ana")
    with pytest.raises(
        NotFoundError, match=r"named 'points_remindr'\. Did you mean 'points_reminder'\? "
    ):
        check_segment_names(store, ["points_remindr"])  # saved and a template: named once
