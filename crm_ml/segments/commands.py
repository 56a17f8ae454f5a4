"""Plain functions behind ``crm-ml segment create | show | export``.

They return text; the CLI prints it. The export secret is an argument: the
CLI reads it from ``CRM_ML_EXPORT_SECRET``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd

from crm_ml.rules import as_timestamp
from crm_ml.segments.definitions import Segment, load_segment, save_segment
from crm_ml.segments.export import export_list
from crm_ml.segments.members import segment_sizes, snapshot_segment
from crm_ml.store.connection import Store
from crm_ml.tags.commands import _features


def segment_create_command(
    store: Store,
    name: str,
    rule: str,
    *,
    actor: str,
    label: str | None = None,
    kind: Literal["static", "dynamic"] = "dynamic",
) -> str:
    """Check and save a segment; return a one-line confirmation."""
    saved = save_segment(store, Segment(name, rule, label, kind), actor=actor)
    return f"Saved segment {saved.name} v{saved.version} ({saved.kind}): {saved.rule}"


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
    features: pd.DataFrame | None = None,
) -> str:
    """Export a segment's consented members (see :func:`~crm_ml.segments.export_list`)."""
    summary = export_list(
        store,
        name,
        as_of,
        channel=channel,
        purpose=purpose,
        out_dir=out_dir,
        secret=secret,
        actor=actor,
        unmask=unmask,
        features=features,
    )
    files = [f"  {row.path}  ({row.kept} rows)" for row in summary.files.itertuples()]
    return "\n".join([str(summary), *files])
