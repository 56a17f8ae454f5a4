"""Plain functions behind ``crm-ml tags apply`` and ``crm-ml tags list``.

They return text or frames; the CLI prints them. Features are computed with
:func:`crm_ml.features.customer_features` unless given.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from crm_ml.rules import as_timestamp
from crm_ml.store.connection import Store
from crm_ml.tags.apply import apply_tags, check_apply_date
from crm_ml.tags.definitions import tag_definitions_frame
from crm_ml.tags.history import tag_sizes


def _features(store: Store, as_of: Any, features: pd.DataFrame | None) -> pd.DataFrame:
    if features is not None:
        return features
    from crm_ml.features import customer_features

    frame: pd.DataFrame = customer_features(store, as_of)
    return frame


def tags_apply_command(
    store: Store,
    as_of: Any,
    *,
    features: pd.DataFrame | None = None,
    actor: str = "crm-ml tags apply",
) -> str:
    """Apply the stored rule and model tags (the built-in library if none) at ``as_of``.

    Returns
    -------
    str
        A table of tags with their members, added and removed counts, then how
        many customers erased on request were left out, if any.
    """
    on = as_timestamp(as_of)
    check_apply_date(store, on)  # before the features: a refused date should cost nothing
    summary = apply_tags(store, _features(store, on, features), on, actor=actor)
    header = f"Applied {len(summary)} tags as of {on:%Y-%m-%d}:"
    note = summary.attrs.get("erased_note")
    return "\n".join([header, summary.to_string(), *([note] if note else [])])


def tags_list_command(store: Store, *, on: Any | None = None) -> pd.DataFrame:
    """List the defined tags, with their member counts on ``on`` when given.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``name``; columns ``label, category, kind, version`` and
        ``members`` when ``on`` is given.
    """
    frame = tag_definitions_frame(store)[["label", "category", "kind", "version"]]
    if on is None or frame.empty:
        return frame
    sizes = tag_sizes(store, list(frame.index), [on]).iloc[0]
    return frame.assign(members=sizes.reindex(frame.index).fillna(0).astype("int64"))
