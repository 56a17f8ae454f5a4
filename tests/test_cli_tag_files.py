"""`crm-ml tags add|remove TAG --file`: tagging a campaign's list of ids from the shell."""

from pathlib import Path

import pytest
from project_settings import cli_project

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.store import Store
from crm_ml.tags import TagDefinition, customers_with_tag, save_tag_definition, tag_history

VIP = TagDefinition("vip", "VIP客户", "manual_list", kind="manual", owner="crm-team")
AUDIT = ["--actor", "王经理", "--reason", "双十一到店名单"]


@pytest.fixture
def shop(tmp_path, monkeypatch, capsys) -> Store:
    """A project whose store holds customers 00012, 00034 and C3, and the manual tag vip."""
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    (tmp_path / "customer.csv").write_text(
        "customer_id,name,created_at\n00012,张三,2024-01-01\n00034,李四,2024-01-01\n"
        "C3,王五,2024-01-01\n",
        encoding="utf-8",
    )
    assert main(["import", "customer", "customer.csv"]) == 0
    store = Store(Settings.from_env().database_url)
    save_tag_definition(store, VIP)
    capsys.readouterr()
    return store


def test_tags_add_reads_a_gbk_file_and_prints_a_summary(shop, tmp_path, capsys):
    Path("名单.csv").write_bytes("会员编号,备注\r\n00012,到店\r\nC3,到店\r\n".encode("gbk"))
    argv = ["tags", "add", "vip", "--file", "名单.csv", "--column", "会员编号", *AUDIT]
    assert main([*argv, "--at", "2025-01-01"]) == 0
    assert capsys.readouterr().out == (
        "vip ← 名单.csv (GBK): 2 rows, 2 customers; 2 added, 0 already had it\n"
    )
    history = tag_history(shop, tag="vip")
    assert set(history["reason"]) == {"双十一到店名单 [file: 名单.csv]"}
    assert set(history["actor"]) == {"王经理"}


def test_tags_remove_closes_the_memberships(shop, capsys):
    Path("ids.csv").write_bytes(b"\xef\xbb\xbfcustomer_id\r\n00012\r\n00034\r\n")
    assert main(["tags", "add", "vip", "--file", "ids.csv", *AUDIT, "--at", "2025-01-01"]) == 0
    Path("out.csv").write_bytes(b"customer_id\n00034\n")
    assert main(["tags", "remove", "vip", "--file", "out.csv", *AUDIT, "--at", "2025-02-01"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "vip ← out.csv (UTF-8): 1 rows, 1 customers; 1 removed, 0 did not have it"
    )
    assert list(customers_with_tag(shop, "vip", "2025-02-01")) == ["00012"]


def test_tags_add_refuses_lost_zeros_and_writes_nothing(shop, capsys):
    Path("ids.csv").write_bytes(b"customer_id\n00034\n12\n")
    assert main(["tags", "add", "vip", "--file", "ids.csv", *AUDIT]) == 2
    err = capsys.readouterr().err
    # The first line (after the time: under capsys stderr is not a terminal).
    assert "crm-ml: error: ids.csv: 1 of 2 rows refused; nothing was tagged." in err.splitlines()[0]
    assert "ids.csv:3 customer_id: '12' looks like '00012' with its leading zeros lost" in err
    assert tag_history(shop, tag="vip").empty


def test_tags_add_names_the_missing_column(shop, capsys):
    Path("ids.csv").write_bytes(b"id\n00034\n")
    assert main(["tags", "add", "vip", "--file", "ids.csv", *AUDIT]) == 2
    assert "ids.csv:1: no column 'customer_id'; found ['id']" in capsys.readouterr().err


def test_tags_add_needs_an_actor_and_a_reason(shop, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tags", "add", "vip", "--file", "ids.csv", "--reason", "x"])
    assert exit_info.value.code == 2
    assert "--actor" in capsys.readouterr().err
