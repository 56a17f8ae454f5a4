"""Plain functions behind ``crm-ml segment create | list | show | history | export``.

They return text; the CLI prints it. The export secret is an argument: the
CLI reads it from ``CRM_ML_EXPORT_SECRET``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from crm_ml.errors import NotFoundError
from crm_ml.rules import as_timestamp
from crm_ml.segments.definitions import (
    Segment,
    load_segment,
    save_segment,
    segment_definitions_frame,
    segment_history,
)
from crm_ml.segments.export import check_unmask_reason, export_list
from crm_ml.segments.lists import check_channel
from crm_ml.segments.masking import require_secret
from crm_ml.segments.members import (
    latest_snapshots,
    segment_sizes,
    snapshot_rule_version,
    snapshot_segment,
)
from crm_ml.store.connection import Store
from crm_ml.tags.commands import _features


def _stored_segment(store: Store, name: str) -> Segment | None:
    try:
        return load_segment(store, name)
    except NotFoundError:
        return None


def segment_create_command(
    store: Store,
    name: str,
    rule: str,
    *,
    actor: str,
    label: str | None = None,
    kind: Literal["static", "dynamic"] = "dynamic",
) -> str:
    """Check and save a segment; return which version was saved and which it replaced.

    Saving the latest version's rule and kind again writes nothing. Without a
    ``label``, a stored segment keeps its label.
    """
    previous = _stored_segment(store, name)
    if previous is not None:
        label = previous.label if label is None else label
        if (previous.rule, previous.kind, previous.label) == (rule, kind, label):
            return (
                f"Segment {name} is unchanged: v{previous.version} ({kind}) already has "
                f"this rule: {rule}"
            )
    saved = save_segment(store, Segment(name, rule, label, kind), actor=actor)
    line = f"Saved segment {saved.name} v{saved.version} ({saved.kind}): {saved.rule}"
    if previous is None:
        return line
    if saved.version == previous.version:
        return f"{line}\n  label set to {saved.label!r}; rule unchanged"
    return f"{line}\n  replaces v{previous.version} ({previous.kind}): {previous.rule}"


def segment_list_command(store: Store) -> str:
    """List the stored segments: label, version, kind, who saved it, latest snapshot and rule."""
    segments = segment_definitions_frame(store)
    if segments.empty:
        return "No segments yet. Create one with `crm-ml segment create NAME RULE`."
    latest = latest_snapshots(store)
    lines = [f"{len(segments)} segment(s); `crm-ml segment show NAME` shows sizes over time"]
    for name, seg in segments.iterrows():
        label = f" {seg['label']}" if pd.notna(seg["label"]) and seg["label"] else ""
        by = seg["created_by"] if pd.notna(seg["created_by"]) else "unknown"
        on, members = latest.get(str(name), (None, 0))
        snapshot = f"{members:,} members at {on:%Y-%m-%d}" if on is not None else "no snapshot yet"
        lines += [
            f"{name}{label}  v{seg['version']} ({seg['kind']}), by {by}; {snapshot}",
            f"  rule: {seg['rule']}",
        ]
    return "\n".join(lines)


def segment_show_command(
    store: Store, name: str, *, as_of: Any | None = None, features: pd.DataFrame | None = None
) -> str:
    """Describe a segment and its size over time; with ``as_of``, snapshot it first.

    Features are computed with :func:`crm_ml.features.customer_features` when
    ``as_of`` is given and ``features`` is not.
    """
    seg = load_segment(store, name)
    lines = [
        f"{seg.name} v{seg.version} ({seg.kind}) {seg.label or ''}".rstrip(),
        f"  rule: {seg.rule}",
    ]
    if as_of is not None:
        on = as_timestamp(as_of)
        members = snapshot_segment(store, seg, _features(store, on, features), on)
        lines.append(f"  members at {on:%Y-%m-%d}: {len(members)}")
    sizes = segment_sizes(store, [seg.name])
    if not sizes.empty:
        lines.append("  size over time:")
        lines += [f"    {d:%Y-%m-%d}  {n}" for d, n in sizes[seg.name].items()]
    return "\n".join(lines)


def segment_history_command(store: Store, name: str) -> str:
    """Describe every recorded change of a segment, oldest first: who, when, what."""
    history = segment_history(store, name)
    lines = [f"{name}: {len(history)} recorded change(s)"]
    for row in history.to_dict("records"):
        label = f"  {row['label']}" if pd.notna(row["label"]) and row["label"] else ""
        lines += [
            f"  #{row['revision']}  {row['changed_at']:%Y-%m-%d %H:%M} UTC  {row['changed_by']}  "
            f"{row['change']}",
            f"      v{row['version']} ({row['kind']}){label}: {row['rule']}",
        ]
    return "\n".join(lines)


def segment_export_command(
    store: Store,
    name: str,
    as_of: Any,
    *,
    channel: str,
    purpose: str,
    out_dir: Path,
    secret: str | None,
    actor: str,
    unmask: bool = False,
    unmask_reason: str | None = None,
    features: pd.DataFrame | None = None,
    language: str = "zh",
) -> str:
    """Export a segment's consented members (see :func:`~crm_ml.segments.export_list`).

    The files' headers are in ``language`` (``settings.language``).

    When the segment has no snapshot at ``as_of``, or one taken with an older
    version of its rule, :func:`~crm_ml.segments.export_list` takes one first,
    from ``features`` or from features computed as of that date (as
    :func:`segment_show_command` does), and the text says so.
    """
    on = as_timestamp(as_of)
    require_secret(secret)  # refuse before a snapshot is written, not after
    check_channel(channel, purpose)
    check_unmask_reason(unmask, unmask_reason)
    summary = export_list(
        store,
        name,
        on,
        channel=channel,
        purpose=purpose,
        out_dir=out_dir,
        secret=secret,
        actor=actor,
        unmask=unmask,
        unmask_reason=unmask_reason,
        features=_features_for_snapshot(store, name, on, features),
        language=language,
    )
    files = [f"  {row.path}  ({row.kept} rows)" for row in summary.files.itertuples()]
    return "\n".join([str(summary), *files])


def _features_for_snapshot(
    store: Store, name: str, on: datetime, features: pd.DataFrame | None
) -> pd.DataFrame | None:
    """Return ``features``, computed as of ``on`` when export_list must take a snapshot.

    Features are computed only when the segment's current rule has no snapshot
    at ``on``: they take a while and are not needed otherwise.
    """
    current = load_segment(store, name).version
    if features is not None or snapshot_rule_version(store, name, on) == current:
        return features
    return _features(store, on, None)
