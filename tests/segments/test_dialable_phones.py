"""Unmasked phones are written as a dialer in China dials them, and open as text in Excel.

A mainland number is its 11 national digits; any other is ``00`` and the
country code. The cell starts with an invisible tab, which makes Excel keep it
as text (no scientific notation, no lost leading zeros) without the visible
apostrophe of the formula guard; :func:`read_list` gives the number back
without it. Every other cell keeps the formula guard as it was.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features
from sqlalchemy import insert

from crm_ml.segments import Segment, export_list, save_segment, snapshot_segment
from crm_ml.segments.export import ExportSummary
from crm_ml.segments.headers import read_list
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerIdentity

BEFORE = datetime(2024, 3, 1)
PHONES = {"c1": "+8613812345678", "c2": "+447911123456", "c3": "+85291234567"}
NAMES = {"c1": "张三", "c2": "+Smith", "c3": '=HYPERLINK("http://x")'}


@pytest.fixture
def phones(store: Store) -> Store:
    add_customers(store, list(PHONES), NAMES)
    with store.begin() as conn:
        conn.execute(
            insert(CustomerIdentity),
            [{"customer_id": c, "kind": "phone", "value": v, "verified": True,
              "created_at": BEFORE} for c, v in PHONES.items()],
        )  # fmt: skip
        conn.execute(
            insert(Consent),
            [{"customer_id": c, "channel": "sms", "purpose": "marketing", "updated_at": BEFORE,
              "status": "granted", "source": "test"} for c in PHONES],
        )  # fmt: skip
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")
    snapshot_segment(store, "everyone", features(revenue_365d=[1.0] * 3), D1)
    return store


def _export(store: Store, folder: Path, *, unmask: bool) -> ExportSummary:
    return export_list(
        store, "everyone", D1, channel="sms", purpose="marketing", out_dir=folder,
        secret="dialable-phones-secret-0123456789", actor="t", unmask=unmask,
        unmask_reason="test: dialable phones" if unmask else None,
    )  # fmt: skip


def _cells(path: Path) -> list[dict[str, str]]:
    """The cells exactly as written, keyed by the Chinese header."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_unmasked_phones_are_dialable_text_without_an_apostrophe(
    phones: Store, tmp_path: Path
) -> None:
    (path,) = _export(phones, tmp_path, unmask=True).files["path"]

    written = {row["客户编号"]: (row["手机号"], row["姓名"]) for row in _cells(path)}
    assert written == {
        "c1": ("\t13812345678", "张三"),
        "c2": ("\t00447911123456", "'+Smith"),  # the guard still covers every other cell
        "c3": ("\t0085291234567", '\'=HYPERLINK("http://x")'),
    }
    back = read_list(path).set_index("customer_id")["phone"].to_dict()
    assert back == {"c1": "13812345678", "c2": "00447911123456", "c3": "0085291234567"}


def test_masked_phones_are_unchanged(phones: Store, tmp_path: Path) -> None:
    (path,) = _export(phones, tmp_path, unmask=False).files["path"]

    by_name = {row["姓名"]: row["手机号"] for row in _cells(path)}
    assert by_name["张*"] == "138****5678"
    assert read_list(path).set_index("name").loc["张*", "phone"] == "138****5678"


def test_a_phone_that_is_not_a_number_keeps_the_formula_guard(
    phones: Store, tmp_path: Path
) -> None:
    with phones.begin() as conn:
        conn.execute(
            insert(CustomerIdentity),
            [{"customer_id": "c1", "kind": "phone", "value": "=1+2", "verified": True,
              "created_at": datetime(2024, 4, 1)}],
        )  # fmt: skip

    (path,) = _export(phones, tmp_path, unmask=True).files["path"]

    cells = pd.DataFrame(_cells(path)).set_index("客户编号")["手机号"]
    assert cells["c1"] == "'=1+2"


def test_customer_ids_of_digits_keep_their_zeros_in_excel(store: Store, tmp_path: Path) -> None:
    add_customers(store, ["0000109"], {"0000109": "欧阳昇"})
    with store.begin() as conn:
        conn.execute(
            insert(CustomerIdentity),
            [{"customer_id": "0000109", "kind": "phone", "value": "+8613812345678",
              "verified": True, "created_at": BEFORE}],
        )  # fmt: skip
        conn.execute(
            insert(Consent),
            [{"customer_id": "0000109", "channel": "sms", "purpose": "marketing",
              "updated_at": BEFORE, "status": "granted", "source": "test"}],
        )  # fmt: skip
    save_segment(store, Segment("everyone", "revenue_365d >= 0"), actor="t")
    index = pd.Index(["0000109"], name="customer_id", dtype="str")
    snapshot_segment(store, "everyone", pd.DataFrame({"revenue_365d": [1.0]}, index=index), D1)

    (path,) = _export(store, tmp_path, unmask=True).files["path"]

    assert _cells(path)[0]["客户编号"] == "\t0000109"
    assert read_list(path)["customer_id"].tolist() == ["0000109"]
