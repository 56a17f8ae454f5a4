"""Who is followed up one to one depends on the list's date, never on which list they are on.

The value at risk from which a customer likely to churn gets the one-to-one
follow-up is the top 20 % of every customer scored at the date; a list's own
percentile gave a customer on two lists of a day two different actions. The
warning about missing scores says what is true of the store and the list.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from analysis_rows import order
from customer_helpers import BEFORE, D1, add_customers, features, sms_consent
from sqlalchemy import insert

from crm_ml.segments import ExportSummary, Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.headers import read_list
from crm_ml.segments.lists import (
    ACTIONS,
    CONTACT_MODES,
    churn_details,
    churn_risk_at,
    suggest_action,
)
from crm_ml.store import Store
from crm_ml.store.schema import Consent, Order, Score

SECRET = "list-follow-up-secret-0123456789"
IDS = [f"c{i}" for i in range(1, 11)]
#: c1..c10 at p_churn 0.9 spent 100..1000: value at risk 90..900. The 80th percentile of
#: the ten is 720 + 0.2 × 90 = 738, so c9 (810) and c10 (900) are followed up.
CUT_OFF = 738.0
#: A list of three: its own 80th percentile (396) would have put c6 (540) on a follow-up.
FEW = ["c1", "c2", "c6"]
BY_SMS = {kind: text["zh"].format(via=CONTACT_MODES["sms"]["zh"]) for kind, text in ACTIONS.items()}
SMS = {"channel": "sms", "purpose": "marketing"}


def _score(customer_id: str, p: float) -> dict:
    return {"model_name": "crm-churn", "as_of": D1, "customer_id": customer_id,
            "model_version": "1", "probability": p, "band": "high", "scored_at": D1}  # fmt: skip


def _scored(store: Store, ids: list[str] = IDS) -> None:
    """``ids`` scored at D1 with p_churn 0.9, the i-th having spent 100 × i in May."""
    with store.begin() as conn:
        conn.execute(insert(Score), [_score(c, 0.9) for c in ids])
        conn.execute(
            insert(Order),
            [order(f"o{i}", c, "2024-05-01", 100.0 * i) for i, c in enumerate(ids, start=1)],
        )


def _two_segments(store: Store, consented: list[str] = IDS) -> None:
    """Segments ``all`` (c1..c10) and ``few`` (FEW) at D1, none of them selecting by churn."""
    add_customers(store, IDS)
    _scored(store)
    if consented:
        with store.begin() as conn:
            conn.execute(insert(Consent), [sms_consent(c, "granted", BEFORE) for c in consented])
    flags = features(revenue_365d=[1.0 if c in FEW else 0.0 for c in IDS])
    for segment, rule in (("all", "revenue_365d >= 0"), ("few", "revenue_365d >= 1")):
        save_segment(store, Segment(segment, rule), actor="t")
        snapshot_segment(store, segment, flags, D1)


def _export(store: Store, segment: str, out: Path, **options: object) -> ExportSummary:
    return export_list(
        store, segment, D1, **{**SMS, **options}, out_dir=out / segment, secret=SECRET,
        actor="t", unmask=True, unmask_reason="test: full data checked",
    )  # fmt: skip


def _actions(summary: ExportSummary) -> dict[str, str]:
    rows = pd.concat([read_list(p) for p in summary.files["path"]], ignore_index=True)
    return rows.set_index("customer_id")["suggested_action"].to_dict()


def test_a_customer_gets_one_action_on_every_list_of_a_day(store: Store, tmp_path: Path) -> None:
    _two_segments(store)

    everyone = _export(store, "all", tmp_path, churn=True)
    few = _export(store, "few", tmp_path, churn=True)

    on_both = _actions(everyone)
    assert _actions(few) == {c: on_both[c] for c in FEW}
    assert on_both["c6"] == BY_SMS["care"]  # the list of three alone would follow c6 up
    followed = sorted(c for c, a in on_both.items() if a == BY_SMS["agent_follow_up"])
    assert followed == ["c10", "c9"]  # unowned: by a service agent
    # The list's summary says from which value at risk, and of how many customers.
    assert (everyone.follow_up_from, everyone.scored_customers) == (CUT_OFF, 10)
    assert (few.follow_up_from, few.scored_customers) == (CUT_OFF, 10)
    assert "value at risk >= 738.00 (the top 20% of the 10 customers scored" in str(few)


def test_churn_details_takes_the_cut_off_of_the_date_whatever_the_ids(
    duckdb_store: Store,
) -> None:
    _two_segments(duckdb_store)
    with duckdb_store.connect() as conn:
        risk = churn_risk_at(conn, D1)
        alone = churn_details(conn, pd.Index(["c6"]), D1, None, **SMS)
        among_all = churn_details(conn, pd.Index(IDS), D1, None, **SMS, risk=risk)

    assert risk.follow_up_from == CUT_OFF
    assert alone.loc["c6", "value_at_risk"] == 540.0
    assert alone.loc["c6", "suggested_action"] == among_all.loc["c6", "suggested_action"]
    assert alone.loc["c6", "suggested_action"] == BY_SMS["care"]


def test_a_list_for_another_purpose_names_no_cut_off(duckdb_store: Store, tmp_path: Path) -> None:
    _two_segments(duckdb_store)
    with duckdb_store.begin() as conn:
        conn.execute(
            insert(Consent),
            [{**sms_consent(c, "granted", BEFORE), "purpose": "service"} for c in IDS],
        )

    summary = _export(duckdb_store, "few", tmp_path, purpose="service")

    assert summary.follow_up_from is None and "follow-up" not in str(summary)


def test_nothing_at_stake_is_never_followed_up_one_to_one() -> None:
    # With most customers at 0 the date's cut-off is 0: spending nothing earns no follow-up.
    nothing = pd.Series({"p_churn": 0.9, "value_at_risk": 0.0, "owner_id": "m1"})
    assert suggest_action(nothing, 0.0, **SMS) == BY_SMS["care"]
    something = pd.Series({"p_churn": 0.9, "value_at_risk": 0.01, "owner_id": "m1"})
    assert suggest_action(something, 0.0, **SMS) == BY_SMS["manager_follow_up"]


# ------------------------------------------------------------------ the warning about scores


def test_an_export_with_no_one_to_contact_does_not_warn_about_scores(
    duckdb_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _two_segments(duckdb_store, consented=[])

    with caplog.at_level(logging.WARNING):
        summary = _export(duckdb_store, "all", tmp_path, churn=True)

    assert summary.kept == 0
    assert "scores" not in caplog.text  # there are scores: only the empty export is reported
    assert "0 customers to contact" in caplog.text


def test_a_list_of_unscored_customers_is_told_the_store_has_scores(
    duckdb_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_customers(duckdb_store, [*IDS, "c11"])
    _scored(duckdb_store)
    with duckdb_store.begin() as conn:
        conn.execute(insert(Consent), [sms_consent("c11", "granted", BEFORE)])
    with duckdb_store.connect() as conn, caplog.at_level(logging.WARNING):
        details = churn_details(conn, pd.Index(["c11"]), D1, None, **SMS)

    assert details.loc["c11", "suggested_action"] == BY_SMS["no_score"]
    assert "No crm-churn scores up to" not in caplog.text
    assert "None of the 1 customers of the list has a crm-churn score up to" in caplog.text
    assert "(10 customers have one)" in caplog.text


def test_a_list_without_any_scores_in_the_store_is_told_so(
    duckdb_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    add_customers(duckdb_store, ["c1"])
    with duckdb_store.connect() as conn, caplog.at_level(logging.WARNING):
        risk = churn_risk_at(conn, D1)
        details = churn_details(conn, pd.Index(["c1"]), D1, None, **SMS, risk=risk)

    assert risk.follow_up_from is None
    assert details.loc["c1", "suggested_action"] == BY_SMS["no_score"]
    assert "No crm-churn scores up to 2024-06-01 00:00:00" in caplog.text
