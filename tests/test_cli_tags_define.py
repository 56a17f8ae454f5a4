"""`crm-ml tags define NAME --label …`: a manual tag from the shell, before `tags add`."""

from pathlib import Path

import pytest
from project_settings import cli_project

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.store import Store
from crm_ml.tags import TagDefinition, customers_with_tag, save_tag_definition
from crm_ml.tags.definitions import get_tag_definition

AUDIT = ["--actor", "合规官", "--reason", "客户要求不再联系", "--at", "2025-12-31"]


@pytest.fixture
def shop(tmp_path, monkeypatch, capsys) -> Store:
    """A project whose store holds customers C1 and C2 and no tag yet."""
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    (tmp_path / "customer.csv").write_text(
        "customer_id,name,created_at\nC1,张三,2024-01-01\nC2,李四,2024-01-01\n", encoding="utf-8"
    )
    assert main(["import", "customer", "customer.csv"]) == 0
    Path("ids.csv").write_text("customer_id\nC2\n", encoding="utf-8")
    capsys.readouterr()
    return Store(Settings.from_env().database_url)


def test_a_defined_manual_tag_can_be_given_from_a_file(shop, capsys):
    argv = ["tags", "define", "do_not_contact", "--label", "请勿联系"]
    assert main([*argv, "--description", "客户要求不再接受营销联系"]) == 0
    assert main(["tags", "add", "do_not_contact", "--file", "ids.csv", *AUDIT]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "Defined manual tag 'do_not_contact' (请勿联系). Give it to the customers in a file "
        "with: crm-ml tags add do_not_contact --file FILE --actor WHO --reason WHY"
    )
    assert get_tag_definition(shop, "do_not_contact") == TagDefinition(
        "do_not_contact", "请勿联系", kind="manual", description="客户要求不再接受营销联系"
    )
    assert list(customers_with_tag(shop, "do_not_contact", "2026-01-01")) == ["C2"]


def test_defining_it_again_changes_its_label_and_keeps_the_rest(shop, capsys):
    probe = TagDefinition("probe", "探针", "manual_list", "manual", "抽查同意状态", "合规部")
    save_tag_definition(shop, probe)
    assert main(["tags", "add", "probe", "--file", "ids.csv", *AUDIT]) == 0

    assert main(["tags", "define", "probe", "--label", "抽查"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("Relabelled manual tag 'probe' (抽查).")
    assert get_tag_definition(shop, "probe") == TagDefinition(
        "probe", "抽查", "manual_list", "manual", "抽查同意状态", "合规部"
    )
    assert list(customers_with_tag(shop, "probe", "2026-01-01")) == ["C2"]


def test_tags_add_of_an_undefined_tag_names_the_define_command(shop, capsys):
    assert main(["tags", "add", "probe", "--file", "ids.csv", *AUDIT]) == 2

    err = capsys.readouterr().err
    assert "No tag named 'probe' is defined." in err
    assert "To define 'probe' as a manual tag: crm-ml tags define probe --label <中文名>" in err


@pytest.mark.parametrize(
    ("name", "stored"),
    [("dormant", False), ("big_spender", True)],
    ids=["built-in", "stored"],
)
def test_the_name_of_a_rule_tag_is_refused(shop, capsys, name, stored):
    # A manual tag under a rule tag's name would be turned back into the rule by `tags apply`.
    if stored:
        save_tag_definition(shop, TagDefinition(name, "大额客户", rule="revenue_365d > 5000"))
    label = "大额客户" if stored else "沉睡客户"

    assert main(["tags", "define", name, "--label", "手工"]) == 2

    err = capsys.readouterr().err
    assert (
        f"Tag {name!r} is a rule tag ({label}), set by `crm-ml tags apply` from its rule: "
        "expected a name no rule or model tag has. Choose another name for the manual tag, "
        f"e.g. '{name}_manual'." in err
    )
    assert main(["tags", "list"]) == 0
    assert "手工" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["VIP客户", "--label", "VIP"], "tag name 'VIP客户' is not allowed"),
        (["vip", "--label", "  "], "Tag 'vip' needs a label, the text people see in lists"),
    ],
    ids=["name", "blank-label"],
)
def test_a_bad_name_or_blank_label_is_refused(shop, capsys, argv, message):
    assert main(["tags", "define", *argv]) == 2

    assert message in capsys.readouterr().err


def test_label_is_required(shop, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tags", "define", "vip"])

    assert exit_info.value.code == 2
    assert "--label" in capsys.readouterr().err
