"""`crm-ml tags undo | list` and `crm-ml segment list`, from the shell."""

from datetime import datetime

import pandas as pd
import pytest
from project_settings import cli_project

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.store import Store
from crm_ml.tags import TagDefinition, apply_tags, tag_history

DORMANT = TagDefinition("dormant", "沉睡客户", "lifecycle", rule="recency_days > 60")
D1, MISTAKE = datetime(2024, 6, 1), datetime(2025, 2, 1)


def _features(recency: list[float]) -> pd.DataFrame:
    index = pd.Index(["C1", "C2"], name="customer_id", dtype="str")
    return pd.DataFrame({"recency_days": recency}, index=index)


@pytest.fixture
def mistaken(tmp_path, monkeypatch, capsys):
    """A store whose dormant tag was applied at 2024-06-01 and at the mistyped 2025-02-01."""
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    (tmp_path / "customer.csv").write_text(
        "customer_id,name,created_at\nC1,张三,2024-01-01\nC2,李四,2024-01-01\n", encoding="utf-8"
    )
    assert main(["import", "customer", "customer.csv"]) == 0
    store = Store(Settings.from_env().database_url)
    apply_tags(store, _features([90.0, 10.0]), D1, definitions=[DORMANT])
    apply_tags(store, _features([10.0, 90.0]), MISTAKE, definitions=[DORMANT])
    capsys.readouterr()
    return store


def test_tags_undo_withdraws_the_run_and_prints_what_changed(mistaken, capsys):
    assert main(["tags", "undo", "--as-of", "2025-02-01", "--reason", "日期输错"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "Withdrew the rule and model tag run at 2025-02-01 00:00: 1 tag, "
        "1 memberships it opened deleted, 1 it closed reopened.\n"
    )
    assert "`crm-ml tags apply` accepts a date from 2024-06-01 on." in out
    history = tag_history(mistaken, tag="dormant")
    assert history[["customer_id", "valid_from"]].values.tolist() == [["C1", pd.Timestamp(D1)]]
    assert history["valid_to"].isna().all()


def test_tags_undo_at_a_date_without_a_run_fails_and_names_the_runs(mistaken, capsys):
    assert main(["tags", "undo", "--as-of", "2025-02-08", "--reason", "日期输错"]) == 2
    err = capsys.readouterr().err
    assert "No rule or model tag membership was opened or closed at 2025-02-08 00:00" in err
    assert "the latest runs: 2025-02-01 00:00, 2024-06-01 00:00" in err


def test_tags_undo_needs_a_reason(mistaken, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tags", "undo", "--as-of", "2025-02-01"])
    assert exit_info.value.code == 2
    assert "--reason" in capsys.readouterr().err


def test_tags_list_takes_as_of_like_every_other_command(mistaken, capsys):
    assert main(["tags", "list", "--as-of", "2024-06-01"]) == 0
    by_as_of = capsys.readouterr().out
    assert main(["tags", "list", "--on", "2024-06-01"]) == 0  # the older spelling still works
    assert capsys.readouterr().out == by_as_of
    assert "dormant" in by_as_of


def test_segment_list_from_the_shell(mistaken, capsys):
    assert main(["segment", "create", "lapsed", "recency_days > 60", "--label", "流失"]) == 0
    capsys.readouterr()
    assert main(["segment", "list"]) == 0
    out = capsys.readouterr().out
    assert "lapsed 流失  v1 (dynamic)" in out and "no snapshot yet" in out
