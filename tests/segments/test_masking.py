"""Masking and pseudonymous ids."""

from __future__ import annotations

import pytest

from crm_ml.errors import ConfigError
from crm_ml.segments import mask_email, mask_name, mask_phone, pseudonymous_id
from crm_ml.segments.masking import mask_free_text, require_secret
from crm_ml.tags.files import neutralise_cell, safe_file_part


@pytest.mark.parametrize(
    ("raw", "masked"),
    [("张三", "张*"), ("王小明", "王**"), ("李", "*"), ("𠮷野家", "𠮷**"), (None, ""), ("", "")],
)
def test_mask_name(raw: str | None, masked: str) -> None:
    assert mask_name(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+8613812345678", "138****5678"),
        ("13812345678", "138****5678"),
        ("+447911123456", "+44******3456"),
        ("12345", "*****"),
        (None, ""),
    ],
)
def test_mask_phone(raw: str | None, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_mask_email() -> None:
    assert mask_email("alice@example.com") == "a***@example.com"
    assert mask_email("not-an-email") == "***"


def test_secret_rules_and_hmac() -> None:
    key = require_secret("masking-test-key-0b5d3a")
    assert pseudonymous_id("c1", key) == pseudonymous_id("c1", key)
    assert pseudonymous_id("c1", key) != pseudonymous_id("c2", key)
    with pytest.raises(ConfigError, match="CRM_ML_EXPORT_SECRET"):
        require_secret(None)
    with pytest.raises(ConfigError, match="at least 16"):
        require_secret("short")


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise_cell(cell) == "'" + cell
    assert neutralise_cell("张三") == "张三" and neutralise_cell(-1.5) == -1.5


def test_file_parts_cannot_escape() -> None:
    assert safe_file_part("m1") == "m1"
    assert "/" not in safe_file_part("../../etc/passwd")
    assert safe_file_part("王经理") != safe_file_part("李经理")


def test_missing_secret_names_the_variable_the_cli_reads_and_the_python_argument() -> None:
    with pytest.raises(ConfigError) as info:
        require_secret("")
    message = str(info.value)
    assert "CRM_ML_EXPORT_SECRET, which `crm-ml segment export`" in message
    assert "in Python, pass it as secret=os.environ['CRM_ML_EXPORT_SECRET']" in message


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("请打我电话13102525364，谢谢", "请打我电话131****5364，谢谢"),
        ("手机 +86 133-5792-1234", "手机 133****1234"),
        ("身份证11010119900101123X", "身份证*************123X"),
        ("邮箱 wang.fang@163.com", "邮箱 w***@163.com"),
        ("订单2025-12-20 退款¥399，会员卡 80054", "订单2025-12-20 退款¥399，会员卡 80054"),
        ("补偿 2025-12-21 09:00 处理", "补偿 2025-12-21 09:00 处理"),
        ("邮箱yinxj85@163.com", "邮箱y***@163.com"),
        ("2025-12-21 13800138000", "2025-12-21 138****8000"),
        (None, ""),
    ],
)
def test_mask_free_text_masks_contacts_and_ids_only(raw: str | None, masked: str) -> None:
    assert mask_free_text(raw) == masked
