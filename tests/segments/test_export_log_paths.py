"""Moving logged exports: export_log follows the files, or says they were discarded."""

import datetime
from pathlib import Path

from sqlalchemy import insert, select

from crm_ml.segments.export import mark_unpublished, relocate_exports
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
