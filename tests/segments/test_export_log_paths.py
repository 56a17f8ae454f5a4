"""Moving and marking logged exports: each row follows its file, or says what became of it."""

import datetime
from pathlib import Path

from sqlalchemy import insert, select

from crm_ml.segments.export import mark_replaced, mark_unpublished, relocate_exports
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


def _paths(store) -> dict[str, str]:
    with store.connect() as conn:
        return dict(conn.execute(select(ExportLog.export_id, ExportLog.path)).all())


def test_relocate_moves_only_the_rows_under_the_folder(store, tmp_path):
    staged, published = tmp_path / "_staging" / "run_1", tmp_path / "2025-06-30"
    _log(store, "in", staged / "lists" / "a.csv")
    # "_" is a LIKE wildcard: an unescaped prefix would match this sibling folder too.
    _log(store, "sibling", tmp_path / "_staging" / "runX1" / "a.csv")
    _log(store, "prefix", tmp_path / "_staging" / "run_10" / "a.csv")
    with store.begin() as conn:
        assert relocate_exports(conn, staged, published) == 1
    assert _paths(store) == {
        "in": str(published / "lists" / "a.csv"),
        "sibling": str(tmp_path / "_staging" / "runX1" / "a.csv"),
        "prefix": str(tmp_path / "_staging" / "run_10" / "a.csv"),
    }


def test_mark_unpublished_keeps_the_row_and_says_why(store, tmp_path):
    staged = tmp_path / "_staging" / "run_1"
    _log(store, "in", staged / "a.csv")
    with store.begin() as conn:
        assert mark_unpublished(conn, staged, "report failed, see x.ipynb") == 1
    assert _paths(store) == {
        "in": f"not published (report failed, see x.ipynb): {staged / 'a.csv'}"
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
        "earlier": f"replaced by a later run at 2025-07-01 02:30:05 UTC: {lists / 'a.csv'}",
        "other": str(tmp_path / "2025-06-30" / "lists_2" / "a.csv"),
        "later": str(lists / "a.csv"),
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
        "present": str(present),
        "gone": f"not published (run interrupted): {gone}",
    }
