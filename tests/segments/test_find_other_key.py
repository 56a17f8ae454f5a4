"""Lists written under another key: ``lists find`` names them as not searched (review 13a, H3).

A masked list is searched by 匿名编号, recomputed with the key given. A list
written under another key (an earlier one, the demo's throwaway) holds none of
them, and reading it said nothing: "in 0 of N list file(s)" for a customer who
was in it. Lists are written as in tests/segments/test_find_lists.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_find_lists import DAY, SECRET, publish, run_lists_command
from test_find_lists import project as project  # the fixture

from crm_ml.config import Settings
from crm_ml.segments import find
from crm_ml.segments.find import DEMO_SECRET_FILE, find_lists
from crm_ml.store import Store

OTHER = "a-key-set-after-the-lists-7c1d9e"
LISTS = ("everyone_20240601_sms_owner-m1.csv", "everyone_20240601_sms_owner-m2.csv",
         "everyone_20240601_sms_unowned.csv")  # fmt: skip


def _names(paths: tuple[Path, ...]) -> list[str]:
    return [path.name for path in paths]


def test_lists_written_under_another_key_are_named_as_not_searched(
    store: Store, project: Settings
) -> None:
    publish(store, project)  # c1, c2 and c3 on three lists, under SECRET

    found = find_lists(store, project, "c1", secret=OTHER)

    assert found.files.empty
    assert _names(found.other_key) == list(LISTS)
    text = str(found).splitlines()
    assert text[0] == (
        "c1: in 0 of 3 list file(s) read; 3 of them were written under another key and could "
        "not be searched (see below)"
    )
    assert text[1].startswith(
        "3 file(s) were written under another key than the CRM_ML_EXPORT_SECRET given (none "
        "of their 匿名编号 is a stored customer's under it), so c1 could not be looked for in "
        "them. Run `crm-ml lists find c1` again with CRM_ML_EXPORT_SECRET set to the key they "
        "were written with:"
    )
    folder = project.reports_dir / DAY / "segment_lists"
    assert text[2:] == [f"  {folder / name}" for name in LISTS]


def test_only_the_lists_of_another_key_are_named(
    store: Store, project: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(store, project)  # under SECRET
    publish(store, project, secret=OTHER, out_dir=tmp_path / "sent")  # under OTHER, elsewhere

    found = find_lists(store, project, "c2", secret=OTHER)

    assert found.files[["state", "rows"]].values.tolist() == [["elsewhere", 1]]
    assert Path(found.files["path"][0]).parent == tmp_path / "sent"
    assert [p.parent for p in found.other_key] == [project.reports_dir / DAY / "segment_lists"] * 3
    assert str(found).startswith(
        "c2: in 1 of 6 list file(s) read (1 elsewhere); 3 of them were written under another "
        "key and could not be searched (see below)"
    )
    assert "3 of the 6 list file(s) were written under another key than the one given" in (
        caplog.text
    )
    with_first = find_lists(store, project, "c2", secret=SECRET)
    assert with_first.files["state"].tolist() == ["published"]
    assert [p.parent for p in with_first.other_key] == [tmp_path / "sent"] * 3


def test_with_the_key_they_were_written_with_no_list_is_named(
    store: Store, project: Settings
) -> None:
    publish(store, project)
    found = find_lists(store, project, "c4", secret=SECRET)  # on no list (no consent)
    assert found.other_key == ()
    assert str(found) == "c4: in 0 of 3 list file(s) read"


def test_unmasked_and_empty_lists_are_searched_whatever_the_key(
    store: Store, project: Settings, tmp_path: Path
) -> None:
    publish(store, project, unmask=True, unmask_reason="call-back campaign")  # customer ids
    publish(store, project, purpose="service", out_dir=tmp_path / "none")  # nobody consented

    found = find_lists(store, project, "c4", secret=OTHER)

    assert found.searched == 4 and found.other_key == ()  # three unmasked files, one empty
    assert str(found) == "c4: in 0 of 4 list file(s) read"


def test_the_demo_key_file_is_named_when_it_holds_another_key(
    store: Store, project: Settings
) -> None:
    publish(store, project)
    demo_key = project.data_dir / DEMO_SECRET_FILE
    demo_key.parent.mkdir(parents=True)
    demo_key.write_text(SECRET + "\n")

    found = find_lists(store, project, "c3", secret=OTHER)

    assert found.demo_secret == demo_key
    assert (
        str(found)
        .splitlines()[1]
        .endswith(
            f"; the demo keeps the key of its lists in {demo_key}: "
            f"`CRM_ML_EXPORT_SECRET=$(cat {demo_key}) crm-ml lists find c3`:"
        )
    )
    again = find_lists(store, project, "c3", secret=SECRET)  # the demo's key itself
    assert again.other_key == () and again.demo_secret is None
    assert _names(tuple(Path(p) for p in again.files["path"])) == [LISTS[2]]


def test_customers_are_read_a_chunk_at_a_time(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(store, project)
    monkeypatch.setattr(find, "_KEY_CHUNK", 1)  # c1, c2, c3, c4: one query each
    assert _names(find_lists(store, project, "c9", secret=OTHER).other_key) == list(LISTS)
    assert find_lists(store, project, "c9", secret=SECRET).other_key == ()


def test_the_command_says_how_many_lists_it_could_not_search(
    store: Store, project: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    publish(store, project)
    monkeypatch.setenv("CRM_ML_EXPORT_SECRET", OTHER)

    assert run_lists_command(["lists", "find", "c1"], project) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("3 of them were written under another key and could not be searched "
                           "(see below)")  # fmt: skip
    assert [os.path.basename(line) for line in out[2:]] == list(LISTS)
