"""Tagging the customers listed in a file: Excel's encodings and lost zeros, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, D2, add_customers

from crm_ml.errors import LoadRejectedError, ValidationError
from crm_ml.store import Store
from crm_ml.tags import (
    TagDefinition,
    customers_with_tag,
    save_tag_definition,
    tag_customers,
    tag_customers_from_file,
    tag_history,
)

VIP = TagDefinition("vip", "VIP客户", "manual_list", kind="manual", owner="crm-team")


@pytest.fixture
def shop(store: Store) -> Store:
    """Customers 00012, 00034 and C3, and the manual tag ``vip``."""
    add_customers(store, ["00012", "00034", "C3"])
    save_tag_definition(store, VIP)
    return store


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_an_excel_utf8_file_with_a_bom_tags_each_customer_once(shop, tmp_path):
    # Excel's "CSV UTF-8": a BOM, CRLF, a second column, a repeated id and stray spaces.
    path = write(
        tmp_path / "campaign.csv",
        "\ufeffcustomer_id,备注\r\n00012,到店\r\nC3 ,线上\r\n00012,重复\r\n".encode(),
    )
    result = tag_customers_from_file(shop, "vip", path, actor="li.na", reason="双十一活动", at=D1)
    assert result.changes.to_dict("list") == {
        "customer_id": ["00012", "C3"],
        "action": ["added", "added"],
    }
    assert result.summary() == (
        "vip ← campaign.csv (UTF-8): 3 rows, 2 customers (1 repeated); 2 added, 0 already had it"
    )
    history = tag_history(shop, tag="vip")
    assert set(history["source"]) == {"batch"}
    assert set(history["reason"]) == {"双十一活动 [file: campaign.csv]"}
    assert set(history["actor"]) == {"li.na"}
    assert list(customers_with_tag(shop, "vip", D1)) == ["00012", "C3"]


def test_a_gbk_file_with_chinese_headers_just_works(shop, tmp_path):
    path = write(tmp_path / "名单.csv", "会员编号,姓名\r\n00034,张三\r\nC3,李四\r\n".encode("gbk"))
    tag_customers(shop, "vip", ["C3"], at=D1, actor="me", reason="x")
    result = tag_customers_from_file(
        shop, "vip", path, column="会员编号", actor="王经理", reason="门店名单", at=D2
    )
    assert result.summary() == (
        "vip ← 名单.csv (GBK): 2 rows, 2 customers; 1 added, 1 already had it"
    )
    history = tag_history(shop, tag="vip").set_index("customer_id")
    assert history.loc["00034", "reason"] == "门店名单 [file: 名单.csv]"


def test_an_undecodable_file_says_which_encoding_to_pass(shop, tmp_path):
    path = write(tmp_path / "ids.csv", b"customer_id\r\n00012\xff\r\n")
    with pytest.raises(ValidationError, match=r"ids\.csv is neither UTF-8 nor GBK.*--encoding"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)


def test_a_declared_encoding_is_used_as_the_importer_uses_it(shop, tmp_path):
    path = write(tmp_path / "ids.csv", "customer_id,姓名\n00012,张三\n".encode("gbk"))
    with pytest.raises(ValidationError, match=r"ids\.csv:1: byte b'\\xd0' is not valid utf-8"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1, encoding="utf-8")
    assert tag_history(shop, tag="vip").empty


def test_ids_that_lost_their_leading_zeros_are_refused_naming_row_and_stored_id(shop, tmp_path):
    path = write(tmp_path / "ids.csv", b"customer_id\n00034\n12\n")
    with pytest.raises(LoadRejectedError) as refused:
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)
    message = str(refused.value)
    assert message.startswith("ids.csv: 1 of 2 rows refused; nothing was tagged.")
    assert "ids.csv:3 customer_id: '12' looks like '00012' with its leading zeros lost" in message
    assert refused.value.rejects[["line", "rule", "value"]].values.tolist() == [
        [3, "leading_zeros", "12"]
    ]
    assert tag_history(shop, tag="vip").empty


def test_an_unknown_id_refuses_the_whole_file_naming_its_line(shop, tmp_path):
    path = write(tmp_path / "ids.csv", b"customer_id\n00034\nC99\n")
    with pytest.raises(LoadRejectedError, match=r"ids\.csv:3 customer_id: unknown customer 'C99'"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)
    assert tag_history(shop, tag="vip").empty


def test_a_missing_column_names_the_file_the_columns_found_and_the_one_expected(shop, tmp_path):
    path = write(tmp_path / "ids.csv", "会员编号,姓名\n00012,张三\n".encode())
    with pytest.raises(
        ValidationError,
        match=r"ids\.csv:1: no column 'customer_id'; found \['会员编号', '姓名'\]\. "
        r"Name the id column with --column",
    ):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)


def test_a_blank_id_is_refused_but_empty_excel_rows_are_skipped(shop, tmp_path):
    path = write(tmp_path / "ids.csv", b"customer_id,note\n00012,a\n,,\n,b\n")
    with pytest.raises(LoadRejectedError, match=r"ids\.csv:4 customer_id: blank customer id"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)
    write(path, b"customer_id,note\r\n00012,a\r\n,\r\n,\r\n")
    result = tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)
    assert result.changes["customer_id"].tolist() == ["00012"]


def test_a_short_or_long_row_is_refused(shop, tmp_path):
    path = write(tmp_path / "ids.csv", b"customer_id,note\n00012,a\n00034,b,c\n")
    with pytest.raises(LoadRejectedError, match=r"ids\.csv:3: long row: 3 fields"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)
    assert tag_history(shop, tag="vip").empty


def test_a_workbook_is_refused_with_how_to_save_it_as_csv(shop, tmp_path):
    path = write(tmp_path / "ids.xlsx", b"PK\x03\x04")
    with pytest.raises(ValidationError, match=r"ids\.xlsx is an Excel workbook.*CSV UTF-8"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason="x", at=D1)


def test_removing_from_a_file(shop, tmp_path):
    tag_customers(shop, "vip", ["00012", "00034"], at=D1, actor="me", reason="x")
    path = write(tmp_path / "退订.csv", "customer_id\n00012\nC3\n".encode("gbk"))
    result = tag_customers_from_file(
        shop, "vip", path, actor="wang", reason="客户退订", at=D2, remove=True
    )
    assert result.changes.to_dict("list") == {
        "customer_id": ["00012", "C3"],
        "action": ["removed", "not_tagged"],
    }
    assert result.summary() == (
        "vip ← 退订.csv (UTF-8): 2 rows, 2 customers; 1 removed, 1 did not have it"
    )
    history = tag_history(shop, tag="vip").set_index("customer_id")
    assert history.loc["00012", "valid_to"] == pd.Timestamp(D2)
    assert history.loc["00012", "reason"].endswith("by wang: 客户退订 [file: 退订.csv]")
    assert list(customers_with_tag(shop, "vip", D2)) == ["00034"]


def test_a_rule_tag_is_refused_before_anything_is_written(shop, tmp_path):
    save_tag_definition(shop, TagDefinition("dormant", "沉睡", rule="recency_days > 60"))
    path = write(tmp_path / "ids.csv", b"customer_id\n00012\n")
    with pytest.raises(ValidationError, match="is a rule tag"):
        tag_customers_from_file(shop, "dormant", path, actor="me", reason="x", at=D1)


def test_a_blank_reason_is_refused_although_the_file_name_is_added(shop, tmp_path):
    path = write(tmp_path / "ids.csv", b"customer_id\n00012\n")
    with pytest.raises(ValidationError, match="needs an actor and a reason"):
        tag_customers_from_file(shop, "vip", path, actor="me", reason=" ", at=D1)


def test_an_erased_customer_in_the_file_is_counted_and_not_tagged(shop, tmp_path):
    from crm_ml.erasure import erase_customer

    erase_customer(shop, "00034", actor="合规官", reason="ticket DPO-17")
    path = write(tmp_path / "campaign.csv", b"customer_id\n00012\n00034\n")
    result = tag_customers_from_file(shop, "vip", path, actor="li.na", reason="双十一活动", at=D1)
    assert result.summary() == (
        "vip ← campaign.csv (UTF-8): 2 rows, 2 customers; 1 added, 0 already had it, "
        "1 erased on request (not tagged)"
    )
    assert list(customers_with_tag(shop, "vip", D1)) == ["00012"]
