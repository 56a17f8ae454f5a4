"""The explorer's static results: the selection summary, masked sample rows and the portrait PNG.

This module holds what :class:`~crm_ml.widgets.SegmentExplorer` shows about
its current members without widgets, so the same results can go into offline
HTML reports: a one-row summary table, sample rows with masked name, phone
and email beside key features (:data:`SAMPLE_FEATURES`), and the portrait
figure rendered to PNG bytes for the image widget.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from crm_ml.rules import SCORE_FIELDS, as_timestamp, latest_scores
from crm_ml.segments import mask_email, mask_name, mask_phone
from crm_ml.segments.lists import contact_details
from crm_ml.store.connection import Store

#: Features shown beside the masked contact columns of sample rows, when present.
#: Score fields (``p_churn``) come from the store when the features frame has none.
SAMPLE_FEATURES = ("recency_days", "orders_365d", "revenue_365d", "tier_level", "p_churn")


def selection_summary(
    features: pd.DataFrame, members: pd.Index, rule: str, as_of: Any
) -> pd.DataFrame:
    """Return the selection as a one-row table indexed by ``as_of`` (``YYYY-MM-DD``).

    Columns: ``rule`` (``"(everyone)"`` when empty), ``customers``, ``base``
    (rows of ``features``) and ``share`` (NaN when the base is empty).
    """
    base = len(features)
    size = len(members)
    return pd.DataFrame(
        {
            "rule": [rule or "(everyone)"],
            "customers": [size],
            "base": [base],
            "share": [size / base if base else float("nan")],
        },
        index=pd.Index([f"{as_of:%Y-%m-%d}"], name="as_of"),
    )


def sample_scores(store: Store, features: pd.DataFrame, as_of: Any) -> pd.DataFrame:
    """Return the score fields of :data:`SAMPLE_FEATURES` that ``features`` lacks, from the store.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``features``; one column per such score (the latest
        scores at or before ``as_of``; NaN for customers without one).
    """
    missing = [n for n in SAMPLE_FEATURES if n in SCORE_FIELDS and n not in features.columns]
    columns = {}
    with store.connect() as conn:
        for name in missing:
            model, column, _ = SCORE_FIELDS[name]
            columns[name] = latest_scores(conn, model, as_timestamp(as_of))[column]
    return pd.DataFrame(
        {n: c.reindex(features.index) for n, c in columns.items()}, index=features.index
    )


def masked_sample(
    store: Store,
    features: pd.DataFrame,
    members: pd.Index,
    *,
    size: int,
    scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return up to ``size`` members (a fixed-seed sample) with masked contact details.

    A frame with a default index and columns ``name``, ``phone``, ``email``
    (masked; ``""`` when unknown), then those of :data:`SAMPLE_FEATURES` that
    ``features`` or ``scores`` (see :func:`sample_scores`) has, rounded to 2
    decimals; rows sorted by ``customer_id``.
    """
    count = min(size, len(members))
    ids = pd.Series(members).sample(count, random_state=0) if count else pd.Series([])
    chosen = pd.Index(sorted(ids.astype("str")), dtype="str", name="customer_id")
    with store.connect() as conn:
        details = contact_details(conn, chosen)
    frame = pd.DataFrame(
        {
            "name": [mask_name(v) if isinstance(v, str) else "" for v in details["name"]],
            "phone": [mask_phone(v) if isinstance(v, str) else "" for v in details["phone"]],
            "email": [mask_email(v) if isinstance(v, str) else "" for v in details["email"]],
        }
    )
    rows = features.loc[chosen]
    if scores is not None:
        rows = rows.join(scores.loc[chosen].drop(columns=rows.columns, errors="ignore"))
    extra = [c for c in SAMPLE_FEATURES if c in rows.columns]
    values = rows[extra].reset_index(drop=True).round(2)
    return pd.concat([frame, values], axis=1)


def figure_png(figure: Figure) -> bytes:
    """Render ``figure`` as PNG bytes at 72 dpi, for an image widget."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()
