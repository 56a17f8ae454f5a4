"""A file that is not CDNOW is refused with what a CDNOW line looks like and what was found."""

import re
from pathlib import Path

import pytest

from crm_ml.errors import ValidationError
from crm_ml.store.cdnow import read_cdnow


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("ascii"))
    return path


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (
            "customer_id,name\r\nC1,Li Na\r\n",
            r"line 2 has 2 field\(s\) separated by spaces \(it looks comma-separated\); "
            r"found 'C1,Li Na'",
        ),
        ("id date\r\n00001 19970101\r\n", r"line 2 has 2 field\(s\) separated by spaces; found"),
        (" 00001 0001 19970101 1 1.00 x\r\n", r"line 1 has 6 field\(s\)"),
    ],
)
def test_a_file_of_another_layout_is_named_as_not_cdnow(tmp_path, body, found):
    path = write(tmp_path, "customer.csv", body)
    with pytest.raises(
        ValidationError, match=r"customer\.csv does not look like a CDNOW file: "
    ) as info:
        read_cdnow(path)
    message = str(info.value)
    assert re.search(found, message)
    assert "'id YYYYMMDD cds dollars'" in message
    assert "like line" not in message
