"""One rule for decisions made at the same instant: the most protective wins."""

from __future__ import annotations

import pytest

from crm_ml.store.rekey import KEYED_TABLES
from crm_ml.store.schema import CONSENT_PROTECTION, CONSENT_STATUSES


def test_the_protection_order_ranks_every_consent_status() -> None:
    assert set(CONSENT_PROTECTION) == set(CONSENT_STATUSES)
    ranked = sorted(CONSENT_PROTECTION, key=CONSENT_PROTECTION.__getitem__)
    assert ranked == ["withdrawn", "unknown", "granted"]


@pytest.mark.parametrize(
    ("survivor", "merged", "kept"),
    [
        ("granted", "withdrawn", "withdrawn"),
        ("withdrawn", "granted", "withdrawn"),
        ("granted", "unknown", "unknown"),
        ("unknown", "granted", "unknown"),
        ("unknown", "withdrawn", "withdrawn"),
    ],
)
def test_re_keying_keeps_the_more_protective_of_two_decisions_at_one_instant(
    survivor: str, merged: str, kept: str
) -> None:
    resolve = KEYED_TABLES["consent"]
    assert resolve([{"status": survivor}, {"status": merged}])["status"] == kept
