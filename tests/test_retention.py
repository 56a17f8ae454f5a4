"""A retention period: what is older than the date goes, what is later or still needed stays.

Scores, segment snapshots and ended tag memberships are written by hand; lists
are exported into a project's reports folder as a report run publishes them.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from customer_helpers import D1, D3, owned_segment
from project_settings import project_settings
from sqlalchemy import insert, select
from test_reporting import _notebook

from crm_ml import retention
from crm_ml.cli import build_parser
from crm_ml.config import Settings
from crm_ml.errors import ValidationError
from crm_ml.reporting import run_report
from crm_ml.retention import purge_before
from crm_ml.segments import Segment, export_list, save_segment
from crm_ml.store import Store
from crm_ml.store.schema import (
    CustomerTag,
    ExportLog,
    RetentionPurge,
    Score,
    SegmentMember,
    SegmentSnapshot,
)

SECRET = "retention-test-key-7c41d9e2"
CUTOFF = "2024-07-01"
OLD, OLDER, LATER = datetime(2024, 6, 1), datetime(2024, 5, 1), datetime(2024, 8, 1)
PURGED = r"^purged at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by dpo; written$"


@pytest.fixture
def project(store: Store, tmp_path: Path) -> Settings:
    """c1–c4, segment ``everyone`` (dynamic) snapshot at D1 (2024-06-01) and D3 (2024-08-01)."""
    owned_segment(store, ["c1", "c2", "c3", "c4"])
    _snapshot(store, "everyone", D3, ["c1", "c2"])
    return project_settings(tmp_path, database_url=store.url)


def _snapshot(store: Store, segment: str, on: datetime, members: list[str]) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(SegmentSnapshot).values(
                segment_id=segment, as_of=on, rule_version=1, members=len(members), taken_at=on
            )
        )
        conn.execute(
            insert(SegmentMember),
            [{"segment_id": segment, "as_of": on, "customer_id": c} for c in members],
        )


def _score(model: str, on: datetime, customer: str) -> dict[str, Any]:
    return {"model_name": model, "as_of": on, "customer_id": customer, "model_version": "1",
            "probability": 0.5, "band": "medium", "reasons": None, "scored_at": on}  # fmt: skip


def _tag(tag: str, customer: str, since: datetime, until: datetime | None, source: str) -> dict:
    return {"customer_id": customer, "tag_id": tag, "valid_from": since, "valid_to": until,
            "source": source, "actor": "t", "reason": None}  # fmt: skip


def _history(store: Store) -> None:
    """Scores of two models, a static segment and rule, model and manual tag memberships."""
    save_segment(store, Segment("frozen", "revenue_365d >= 0", kind="static"), actor="t")
    _snapshot(store, "frozen", OLDER, ["c1"])
    _snapshot(store, "frozen", OLD, ["c1"])
    rows = [
        _tag("vip", "c1", OLDER, OLD, "manual"),  # ended before: goes
        _tag("vip", "c2", OLDER, datetime(2024, 7, 1), "manual"),  # ended at the date: goes
        _tag("vip", "c3", OLDER, LATER, "manual"),  # ended after: stays
        _tag("vip", "c4", OLDER, None, "manual"),  # open since long ago: stays
        _tag("at_risk", "c1", OLDER, OLD, "rule"),  # ended before the tag's latest run: goes
        _tag("at_risk", "c2", OLDER, datetime(2024, 6, 15), "rule"),  # ended at it: stays
        _tag("at_risk", "c3", OLD, None, "rule"),
    ]
    with store.begin() as conn:
        conn.execute(
            insert(Score),
            [_score("crm-churn", on, c) for on in (OLDER, OLD, LATER) for c in ("c1", "c2")]
            + [_score("crm-propensity", on, "c1") for on in (OLDER, OLD)],
        )
        conn.execute(insert(CustomerTag), rows)


def _rows(store: Store) -> dict[str, list[tuple]]:
    """Every row of the tables a purge deletes from, sorted."""
    keys = {
        "score": (Score.model_name, Score.as_of, Score.customer_id),
        "segment_snapshot": (SegmentSnapshot.segment_id, SegmentSnapshot.as_of),
        "segment_member": (
            SegmentMember.segment_id,
            SegmentMember.as_of,
            SegmentMember.customer_id,
        ),
        "customer_tag": (CustomerTag.tag_id, CustomerTag.customer_id, CustomerTag.valid_to),
        "export_log": (ExportLog.export_id, ExportLog.status, ExportLog.reason),
    }
    with store.connect() as conn:
        return {
            name: sorted(
                (tuple(_plain(v) for v in row) for row in conn.execute(select(*cols))), key=str
            )
            for name, cols in keys.items()
        }


def _plain(value: object) -> object:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else value


def _files(settings: Settings) -> list[str]:
    return sorted(
        p.relative_to(settings.reports_dir).as_posix()
        for p in settings.reports_dir.rglob("*")
        if p.is_file()
    )


def _publish(store: Store, settings: Settings, day: datetime) -> None:
    """Export ``everyone`` into ``reports/<day>/segment_lists``, as a report run publishes it."""
    out = settings.reports_dir / f"{day:%Y-%m-%d}" / "segment_lists"
    export_list(store, "everyone", day, out_dir=out, secret=SECRET, actor="analyst",
                channel="sms", purpose="marketing")  # fmt: skip


def _reports(store: Store, settings: Settings) -> None:
    """Lists of D1 and D3, a customer 360 of each date, failed runs, and files to leave alone."""
    _publish(store, settings, D1)
    _publish(store, settings, D3)
    reports = settings.reports_dir
    for day in ("2024-06-01", "2024-08-01"):
        for suffix in (".html", ".ipynb"):
            (reports / day / f"customer_360-c1{suffix}").write_text("张三 13800138000")
        (reports / "_failed").mkdir(exist_ok=True)
        (reports / "_failed" / f"{day}-segment_lists-1a2b3c4d.ipynb").write_text("{}")
    (reports / "_failed" / "notes.txt").write_text("by hand")
    (reports / "cron.log").write_text("2024-06-01 02:30:05 crm-ml report run …")
    (reports / "by-hand").mkdir()
    (reports / "by-hand" / "x.csv").write_text("pseudo_id\n")


def test_rows_before_the_date_go_and_later_or_still_needed_ones_stay(
    store: Store, project: Settings
) -> None:
    _history(store)

    summary = purge_before(store, project, before=CUTOFF, actor="dpo", reason="R-12")

    rows = _rows(store)
    assert rows["score"] == [
        ("crm-churn", "2024-08-01", "c1"), ("crm-churn", "2024-08-01", "c2"),
        ("crm-propensity", "2024-06-01", "c1"),  # its latest run: rules and lists read it
    ]  # fmt: skip
    assert rows["segment_snapshot"] == [("everyone", "2024-08-01"), ("frozen", "2024-06-01")]
    assert rows["segment_member"] == [
        ("everyone", "2024-08-01", "c1"), ("everyone", "2024-08-01", "c2"),
        ("frozen", "2024-06-01", "c1"),  # a static segment's members: its latest snapshot
    ]  # fmt: skip
    assert rows["customer_tag"] == [
        ("at_risk", "c2", "2024-06-15"),  # ended at the tag's latest run: undo reopens it
        ("at_risk", "c3", None),
        ("vip", "c3", "2024-08-01"),
        ("vip", "c4", None),
    ]
    assert dict(summary.rows) == {
        "score": 5, "segment_member": 5, "segment_snapshot": 2, "customer_tag": 3,
    }  # fmt: skip
    text = str(summary)
    assert text.startswith("Retention purge of data before 2024-07-01 UTC by dpo (R-12) deleted:")
    assert "  score: 5 row(s)" in text and "  customer_tag: 3 row(s)" in text
    assert "crm-propensity's latest run, as of 2024-06-01" in text
    assert "static segment frozen's of 2024-06-01" in text
    assert "at_risk's memberships ended at its latest run, 2024-06-15" in text


def test_a_purge_is_recorded_and_a_report_of_a_purged_date_is_refused(
    store: Store, project: Settings
) -> None:
    _history(store)
    (project.root / "notebooks").mkdir(exist_ok=True)
    _notebook(str(project.root / "notebooks" / "tiny.ipynb"))
    done = purge_before(store, project, before=CUTOFF, actor="dpo", reason="six months")
    with store.connect() as conn:
        (recorded,) = conn.execute(select(RetentionPurge.__table__)).all()
    assert (recorded.actor, recorded.reason, recorded.before) == (
        "dpo", "six months", datetime(2024, 7, 1)
    )  # fmt: skip
    counted = "; ".join(f"{table}: {n}" for table, n in done.rows.items())
    assert recorded.deleted == f"{counted}; report folders: 0; files: 0; export_log rows marked: 0"
    assert counted.startswith("score: 5; ")  # of 6 earlier: crm-propensity's latest run stays

    with pytest.raises(ValidationError, match=(
        r"Cannot make report tiny as of 2024-06-30: a retention purge on .* UTC by dpo "
        r"\(six months\) deleted everything dated before 2024-07-01 00:00, .* Expected a date "
        r"on or after 2024-07-01\."
    )):  # fmt: skip
        run_report(project, "tiny", as_of=date(2024, 6, 30))
    assert not (project.reports_dir / "2024-06-30").exists()
    assert run_report(project, "tiny", as_of=date(2024, 7, 1)).html.exists()  # the date itself


def test_a_dry_run_counts_the_same_and_changes_nothing(store: Store, project: Settings) -> None:
    _history(store)
    _reports(store, project)
    rows, files = _rows(store), _files(project)

    dry = purge_before(store, project, before=CUTOFF, actor="dpo", reason="R-12", dry_run=True)

    assert (_rows(store), _files(project)) == (rows, files)
    with store.connect() as conn:
        assert conn.execute(select(RetentionPurge.__table__)).all() == []  # not recorded
    assert str(dry).startswith(
        "Dry run, nothing changed: a retention purge of data before 2024-07-01 UTC by dpo "
        "(R-12) would delete:"
    )
    done = purge_before(store, project, before=CUTOFF, actor="dpo", reason="R-12")
    assert (dry.rows, dry.files, dry.rows_marked) == (done.rows, done.files, done.rows_marked)
    assert (dry.report_folders, dry.failed_runs) == (done.report_folders, done.failed_runs)


def test_report_folders_customer_360s_and_failed_runs_before_the_date_go(
    store: Store, project: Settings
) -> None:
    _reports(store, project)
    before = _rows(store)["export_log"]

    summary = purge_before(store, project, before=CUTOFF, actor="dpo", reason="R-12")

    assert not (project.reports_dir / "2024-06-01").exists()
    assert _files(project) == [
        "2024-08-01/customer_360-c1.html",
        "2024-08-01/customer_360-c1.ipynb",
        "2024-08-01/segment_lists/everyone_20240801_sms_owner-m1.csv",
        "2024-08-01/segment_lists/everyone_20240801_sms_owner-m2.csv",
        "2024-08-01/segment_lists/everyone_20240801_sms_unowned.csv",
        "_failed/2024-08-01-segment_lists-1a2b3c4d.ipynb",
        "_failed/notes.txt",
        "by-hand/x.csv",
        "cron.log",
    ]
    # export_log never says a deleted list is in place: its rows say who purged it and why.
    with store.connect() as conn:
        logged = conn.execute(select(ExportLog.as_of, ExportLog.status, ExportLog.reason)).all()
    for as_of, status, reason in logged:
        if as_of < datetime(2024, 7, 1):
            assert re.match(PURGED, status), status
            assert reason == "purged: R-12"
        else:
            assert (status, reason) == ("written", None)
    assert len(before) == 6 and summary.rows_marked == 3
    assert (summary.files, summary.customer_360s) == (3 + 2 + 1, 1)
    assert summary.failed_runs == (
        project.reports_dir / "_failed" / "2024-06-01-segment_lists-1a2b3c4d.ipynb",
    )
    assert summary.left_alone == (project.reports_dir / "_failed" / "notes.txt",)
    assert (
        "  reports: 1 dated folder(s) (1 customer 360 report(s)) and 1 failed run(s), "
        "6 file(s); 3 export_log row(s) marked purged"
    ) in str(summary)


def test_a_purge_whose_transaction_fails_deletes_nothing(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(store)
    _reports(store, project)
    rows, files = _rows(store), _files(project)
    real = retention.mark_purged

    def mark_then_fail(*args: Any, **kwargs: Any) -> int:
        real(*args, **kwargs)
        raise RuntimeError("connection lost")

    monkeypatch.setattr(retention, "mark_purged", mark_then_fail)
    with pytest.raises(RuntimeError, match="connection lost"):
        purge_before(store, project, before=CUTOFF, actor="dpo", reason="R-12")

    assert (_rows(store), _files(project)) == (rows, files)  # files back, no stray copies


@pytest.mark.parametrize(("actor", "reason"), [("", "R-12"), ("dpo", " "), ("dpo", "")])
def test_a_purge_needs_an_actor_and_a_reason(
    store: Store, project: Settings, actor: str, reason: str
) -> None:
    _history(store)
    _reports(store, project)
    rows, files = _rows(store), _files(project)

    with pytest.raises(ValidationError, match="A retention purge needs an actor and a reason"):
        purge_before(store, project, before=CUTOFF, actor=actor, reason=reason, dry_run=True)
    with pytest.raises(ValidationError, match="A retention purge needs an actor and a reason"):
        purge_before(store, project, before=CUTOFF, actor=actor, reason=reason)

    assert (_rows(store), _files(project)) == (rows, files)


def test_a_date_in_the_future_is_refused(store: Store, project: Settings) -> None:
    _history(store)
    rows = _rows(store)

    with pytest.raises(ValidationError, match=r"--before 2999-01-01 is in the future .* past date"):
        purge_before(store, project, before="2999-01-01", actor="dpo", reason="R-12")

    assert _rows(store) == rows


def test_the_command_purges_and_prints_its_summary(
    store: Store, project: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _history(store)
    _reports(store, project)
    argv = ["retention", "purge", "--before", CUTOFF, "--actor", "dpo", "--reason", "R-12"]

    for extra, changed in ((["--dry-run"], False), ([], True)):
        rows = _rows(store)
        args = build_parser().parse_args([*argv, *extra])
        assert args.func(args, project) == 0
        out = capsys.readouterr().out
        assert (_rows(store) != rows) is changed
        assert "  score: 5 row(s)" in out
        assert f"    {project.reports_dir / '2024-06-01'}" in out
    assert not (project.reports_dir / "2024-06-01").exists()
