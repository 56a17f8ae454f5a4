"""Export files: written atomically, with the permissions ``open()`` would give, paths checked."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from crm_ml.errors import ConfigError
from crm_ml.tags.files import atomic_write, write_excel_csv

FRAME = pd.DataFrame({"pseudo_id": ["p1"], "name": ["张*"]})


@pytest.fixture
def umask() -> Iterator[None]:
    """Run with umask 022 (files 0644), restoring the caller's afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_new_list_gets_the_permissions_of_the_umask(tmp_path, umask):
    path = write_excel_csv(FRAME, tmp_path / "lists" / "list.csv")
    assert mode(path) == 0o644
    assert mode(path.parent) == 0o755


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_replaced_file_keeps_its_mode_and_gets_the_new_content(tmp_path, umask):
    path = tmp_path / "list.csv"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o640)
    write_excel_csv(FRAME, path)
    assert mode(path) == 0o640
    assert path.read_text(encoding="utf-8-sig").splitlines() == ["pseudo_id,name", "p1,张*"]


def test_a_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("keep me", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"out/list\.csv: .*out is a file, but a folder is needed"
    ):
        write_excel_csv(FRAME, blocker / "list.csv")
    assert blocker.read_text(encoding="utf-8") == "keep me"


def test_a_target_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "list.csv").mkdir()
    with pytest.raises(ConfigError, match=r"list\.csv: it is a folder; expected a file name"):
        write_excel_csv(FRAME, tmp_path / "list.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["list.csv"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("previous", encoding="utf-8")

    def broken(handle):
        handle.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, broken, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
