"""Removing one person from the lists already written (privacy review F5): ``lists redact``.

Lists are written and archived as in tests/segments/test_find_lists.py. Every
file holding the person is rewritten without their rows, the rest of it byte
for byte; the export_log rows keep their status (finds and purges still reach
the files) and record the redaction in ``reason``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import pytest
from customer_helpers import BEFORE
from sqlalchemy import insert, select
from test_find_lists import (
    DAY,
    SECRET,
    _leftover,
    archive,
    project,
    publish,
    run_lists_command,
)

from crm_ml.config import Settings
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.segments.archive_purge import purge_archive
from crm_ml.segments.find import find_lists
from crm_ml.segments.masking import pseudonymous_id
from crm_ml.segments.redact import redact_lists, without_person
from crm_ml.store import Store
from crm_ml.store.schema import CustomerMerge, CustomerOwner, ExportLog

__all__ = ["project"]  # the fixture, shared with the find tests

OTHER = "a-key-set-after-the-lists-7c1d9e"
M1 = "everyone_20240601_sms_owner-m1.csv"
NOTE = (
    r"redacted \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by dpo: 1 row\(s\) of one person removed "
    r"\(erasure DPO-2026-017\)"
)


def _c3_also_with_m1(store: Store) -> None:
    """Give c3 to m1 too, so that m1's list holds c1 and c3."""
    with store.begin() as conn:
        conn.execute(
            insert(CustomerOwner).values(
                customer_id="c3", valid_from=BEFORE, owner_id="m1", owner_name="周经理"
            )
        )


def _redact(store: Store, settings: Settings, customer: str = "c1", **options: object):
    values: dict = {"secret": SECRET, "actor": "dpo", "reason": "erasure DPO-2026-017", **options}
    return redact_lists(store, settings, customer, **values)


def _log(store: Store) -> dict[str, tuple[str, str | None, str | None]]:
    """``export_id -> (path, status, reason)`` of every export_log row."""
    table = ExportLog.__table__
    with store.connect() as conn:
        rows = conn.execute(select(table.c.export_id, table.c.path, table.c.status,
                                   table.c.reason)).all()  # fmt: skip
    return {export_id: (path, status, reason) for export_id, path, status, reason in rows}


def _without_line_of(data: bytes, customer: str) -> bytes:
    """``data`` without the CRLF-ended line holding ``customer``'s 匿名编号."""
    wanted = pseudonymous_id(customer, SECRET.encode()).encode()
    return b"".join(line for line in data.splitlines(keepends=True) if wanted not in line)


def test_a_person_is_removed_from_published_and_archived_lists_and_nothing_else(
    store: Store, project: Settings
) -> None:
    _c3_also_with_m1(store)
    publish(store, project)
    kept = archive(store, project)
    publish(store, project)
    published = project.reports_dir / DAY / "segment_lists"
    os.chmod(published / M1, 0o640)
    files = sorted(p for p in project.reports_dir.rglob("*.csv"))
    before = {p: p.read_bytes() for p in files}
    logged = _log(store)

    summary = _redact(store, project)

    rewritten = {kept / M1, published / M1}
    assert {path for path, _ in summary.rewritten} == rewritten
    assert (summary.rows_removed, summary.rows_noted, summary.not_redacted) == (2, 2, ())
    for path in files:
        expected = _without_line_of(before[path], "c1") if path in rewritten else before[path]
        assert path.read_bytes() == expected, path
    assert before[published / M1].startswith(b"\xef\xbb\xbf")  # the BOM, kept by the above
    assert (published / M1).read_bytes().count(b"\r\n") == 2  # header and c3's row
    assert (published / M1).stat().st_mode & 0o777 == 0o640
    after = _log(store)
    for export_id, (path, status, reason) in after.items():
        if Path(path).name == M1:
            assert (path, status) == logged[export_id][:2]  # still where find and purge look
            assert re.fullmatch(NOTE, reason or ""), reason
        else:
            assert after[export_id] == logged[export_id]
    assert find_lists(store, project, "c1", secret=SECRET).files.empty
    c3 = find_lists(store, project, "c3", secret=SECRET)
    assert len(c3.files) == 2
    # Whoever looks up a rewritten list sees that it was (without whom it was about).
    noted = [line for line in str(c3).splitlines() if "export_log" in line]
    assert len(noted) == 2 and all(re.search(f"; reason: {NOTE}$", line) for line in noted)
    assert str(summary).startswith(
        "c1: 2 list file(s) rewritten without the person, 2 row(s) removed, "
        "2 export_log row(s) noted 'redacted' (of 6 list file(s) read)."
    )


def test_a_redacted_archive_is_still_purged_and_keeps_both_reasons(
    store: Store, project: Settings
) -> None:
    publish(store, project, unmask=True, unmask_reason="call-back campaign")
    kept = archive(store, project)
    assert (kept / M1).stat().st_mode & 0o777 == 0o600
    _redact(store, project)
    assert (kept / M1).stat().st_mode & 0o777 == 0o600  # an unmasked list stays private

    purged = purge_archive(store, project, before="2024-06-03", actor="dpo", reason="retention")

    assert purged.rows_marked == 3
    reasons = sorted(reason or "" for _, _, reason in _log(store).values())
    both = rf"call-back campaign; {NOTE}; purged: retention"  # the unmask, redact and purge whys
    assert len([r for r in reasons if re.fullmatch(both, r)]) == 1
    assert reasons.count("call-back campaign; purged: retention") == 2


def test_the_records_merged_into_the_person_are_removed_too(
    store: Store, project: Settings
) -> None:
    publish(store, project)  # c3 on the unowned list under its own 匿名编号
    with store.begin() as conn:
        conn.execute(
            insert(CustomerMerge).values(
                merged_id="c3", surviving_id="c1", merged_at=datetime(2024, 9, 1), reason="dup"
            )
        )

    summary = _redact(store, project, "c3")

    assert sorted(path.name for path, _ in summary.rewritten) == [
        M1, "everyone_20240601_sms_unowned.csv"
    ]  # fmt: skip
    assert str(summary).startswith("c3 (the same person as c1): 2 list file(s) rewritten")
    assert find_lists(store, project, "c1", secret=SECRET).files.empty


@pytest.mark.parametrize("actor, reason", [("dpo", ""), ("", "erasure"), ("dpo", "  ")])
def test_redacting_without_an_actor_or_a_reason_is_refused_and_changes_nothing(
    store: Store, project: Settings, actor: str, reason: str
) -> None:
    publish(store, project)
    before = {p: p.read_bytes() for p in project.reports_dir.rglob("*.csv")}
    with pytest.raises(ValidationError, match=r"Redacting a person .* needs an actor and a reason"):
        _redact(store, project, actor=actor, reason=reason)
    assert {p: p.read_bytes() for p in project.reports_dir.rglob("*.csv")} == before


def test_redacting_without_the_secret_is_refused(store: Store, project: Settings) -> None:
    publish(store, project)
    with pytest.raises(ConfigError, match="Set CRM_ML_EXPORT_SECRET"):
        _redact(store, project, secret=None)


def test_a_list_written_under_another_key_is_named_as_not_redacted(
    store: Store, project: Settings, tmp_path: Path
) -> None:
    publish(store, project)
    publish(store, project, secret=OTHER, out_dir=tmp_path / "sent")
    sent = tmp_path / "sent" / M1
    before = sent.read_bytes()

    summary = _redact(store, project)

    assert [path.name for path, _ in summary.rewritten] == [M1]
    assert (sent, "written under another key") in summary.not_redacted
    assert sent.read_bytes() == before
    text = str(summary)
    assert "3 file(s) could NOT be redacted and may still hold the person" in text
    assert f"  {sent}  (written under another key)" in text.splitlines()


def test_a_hidden_copy_left_by_an_interrupted_writer_is_deleted(
    store: Store, project: Settings
) -> None:
    publish(store, project)
    hidden = _leftover(project.reports_dir / DAY / "segment_lists" / M1, "tmp")

    summary = _redact(store, project)

    assert summary.leftovers == (hidden,) and not hidden.exists()
    assert "1 hidden copy(ies) left by interrupted list writers held the person: deleted" in str(
        summary
    )


def test_a_logged_file_that_is_missing_is_named(store: Store, project: Settings) -> None:
    summary = publish(store, project)
    gone = Path(sorted(summary.files["path"])[0])
    gone.unlink()
    text = str(_redact(store, project, "c2"))
    assert "1 list file(s) the export log records as written are not where it says" in text
    assert f"  {gone.resolve()}" in text.splitlines()


def test_only_the_persons_records_are_dropped_whatever_their_quoting() -> None:
    text = (
        "\ufeff匿名编号,客户编号,流失原因\r\n"
        'p1,\t007,"two\r\nlines"\r\n'
        "p2,008,x\r\n"
        'p3,009,"a ""quote"""'
    )
    kept, removed = without_person(text, {"p2"}, {"007"})
    assert (kept, removed) == ('\ufeff匿名编号,客户编号,流失原因\r\np3,009,"a ""quote"""', 2)


def test_the_command_redacts_and_prints_the_summary(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    publish(store, project)
    monkeypatch.setenv("CRM_ML_EXPORT_SECRET", SECRET)
    argv = ["lists", "redact", "c2", "--actor", "dpo", "--reason", "erasure DPO-2026-017"]

    assert run_lists_command(argv, project) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "c2: 1 list file(s) rewritten without the person, 1 row(s) removed, "
        "1 export_log row(s) noted 'redacted' (of 3 list file(s) read)."
    )
    assert out[1].endswith("everyone_20240601_sms_owner-m2.csv  (1 row(s))")
    with pytest.raises(SystemExit):
        run_lists_command(["lists", "redact", "c2", "--actor", "dpo"], project)
