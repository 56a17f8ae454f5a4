"""Moving and marking logged exports: each row follows its file, or says what became of it."""

import datetime
from pathlib import Path

from sqlalchemy import insert, select

from crm_ml.segments.export_log import mark_replaced, mark_unpublished, relocate_exports
from crm_ml.store.schema import ExportLog

NOW = datetime.datetime(2025, 6, 30)


def _log(store, export_id: str, path: Path) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(ExportLog).values(
                export_id=export_id,
                exported_at=NOW,
                actor="t",
                as_of=NOW,
                channel="sms",
                purpose="marketing",
                rows_kept=1,
                rows_excluded=0,
                unmasked=False,
                path=str(path),
            )
        )


def _paths(store) -> dict[str, tuple[str, str]]:
    """``export_id -> (status, path)``."""
    with store.connect() as conn:
        rows = conn.execute(select(ExportLog.export_id, ExportLog.status, ExportLog.path)).all()
    return {export_id: (status, path) for export_id, status, path in rows}


W = "written"


def test_relocate_moves_only_the_rows_under_the_folder(store, tmp_path):
    staged, published = tmp_path / "_staging" / "run_1", tmp_path / "2025-06-30"
    _log(store, "in", staged / "lists" / "a.csv")
    # "_" is a LIKE wildcard: an unescaped prefix would match this sibling folder too.
    _log(store, "sibling", tmp_path / "_staging" / "runX1" / "a.csv")
    _log(store, "prefix", tmp_path / "_staging" / "run_10" / "a.csv")
    with store.begin() as conn:
        assert relocate_exports(conn, staged, published) == 1
    assert _paths(store) == {
        "in": (W, str(published / "lists" / "a.csv")),
        "sibling": (W, str(tmp_path / "_staging" / "runX1" / "a.csv")),
        "prefix": (W, str(tmp_path / "_staging" / "run_10" / "a.csv")),
    }


def test_mark_unpublished_keeps_the_row_and_says_why(store, tmp_path):
    staged = tmp_path / "_staging" / "run_1"
    _log(store, "in", staged / "a.csv")
    with store.begin() as conn:
        assert mark_unpublished(conn, staged, "report failed, see x.ipynb") == 1
    assert _paths(store) == {
        "in": ("not published (report failed, see x.ipynb)", str(staged / "a.csv"))
    }


def test_mark_replaced_marks_the_earlier_rows_and_not_the_ones_moved_in_after(store, tmp_path):
    lists, staged = tmp_path / "2025-06-30" / "lists", tmp_path / "_staging" / "run_2" / "lists"
    _log(store, "earlier", lists / "a.csv")
    _log(store, "other", tmp_path / "2025-06-30" / "lists_2" / "a.csv")
    _log(store, "later", staged / "a.csv")
    with store.begin() as conn:
        assert mark_replaced(conn, lists, datetime.datetime(2025, 7, 1, 2, 30, 5)) == 1
        assert relocate_exports(conn, staged, lists) == 1
    assert _paths(store) == {
        "earlier": ("replaced by a later run at 2025-07-01 02:30:05 UTC", str(lists / "a.csv")),
        "other": (W, str(tmp_path / "2025-06-30" / "lists_2" / "a.csv")),
        "later": (W, str(lists / "a.csv")),
    }


def test_mark_unpublished_missing_only_leaves_the_files_that_exist(store, tmp_path):
    staging = tmp_path / "_staging"
    present, gone = staging / "run_1" / "a.csv", staging / "run_2" / "a.csv"
    present.parent.mkdir(parents=True)
    present.write_text("pseudo_id\n", encoding="utf-8")
    _log(store, "present", present)
    _log(store, "gone", gone)
    with store.begin() as conn:
        assert mark_unpublished(conn, staging, "run interrupted", missing_only=True) == 1
    assert _paths(store) == {
        "present": (W, str(present)),
        "gone": ("not published (run interrupted)", str(gone)),
    }


def test_a_marked_row_is_neither_moved_nor_marked_again(store, tmp_path):
    staged, published = tmp_path / "_staging" / "run_1", tmp_path / "2025-06-30"
    _log(store, "gone", staged / "a.csv")
    with store.begin() as conn:
        assert mark_unpublished(conn, staged, "report failed") == 1
        assert relocate_exports(conn, staged, published) == 0
        assert mark_replaced(conn, staged, NOW) == 0
    assert _paths(store) == {"gone": ("not published (report failed)", str(staged / "a.csv"))}
