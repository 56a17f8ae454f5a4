"""Segments: audience rules, templates, member snapshots, portraits, and list export."""

from crm_ml.segments.commands import (
    segment_create_command,
    segment_export_command,
    segment_history_command,
    segment_list_command,
    segment_show_command,
)
from crm_ml.segments.definitions import (
    SEGMENT_TEMPLATES,
    Segment,
    SegmentTemplate,
    check_segment_names,
    ensure_segments,
    load_segment,
    save_segment,
    segment_definitions_frame,
    segment_history,
)
from crm_ml.segments.export import ExportSummary, export_list
from crm_ml.segments.headers import read_list
from crm_ml.segments.masking import mask_email, mask_name, mask_phone, pseudonymous_id
from crm_ml.segments.members import (
    evaluate_segment,
    overlap_matrix,
    segment_members,
    segment_sizes,
    snapshot_segment,
)
from crm_ml.segments.portrait import plot_portrait, portrait_names, segment_portrait, tag_flags

__all__ = [
    "SEGMENT_TEMPLATES",
    "ExportSummary",
    "Segment",
    "SegmentTemplate",
    "check_segment_names",
    "ensure_segments",
    "evaluate_segment",
    "export_list",
    "load_segment",
    "mask_email",
    "mask_name",
    "mask_phone",
    "overlap_matrix",
    "plot_portrait",
    "portrait_names",
    "pseudonymous_id",
    "read_list",
    "save_segment",
    "segment_create_command",
    "segment_definitions_frame",
    "segment_export_command",
    "segment_history",
    "segment_history_command",
    "segment_list_command",
    "segment_members",
    "segment_portrait",
    "segment_show_command",
    "segment_sizes",
    "snapshot_segment",
    "tag_flags",
]
