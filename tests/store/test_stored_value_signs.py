"""Stored-value rows with the wrong sign for their kind are refused on import (review M1).

A ``spend`` of ``200`` used to load and add 200 to the balance. The import now
checks each kind's sign by the same rules as the posting API
(:data:`crm_ml.store.postings.STORED_VALUE`), so both refuse the same rows.
"""

import pandas as pd
import pytest
from import_files import write

from crm_ml.errors import LedgerError, LoadRejectedError
from crm_ml.store.loading import import_file, import_frame
from crm_ml.store.loyalty import post_stored_value, stored_value_balance
from crm_ml.store.postings import LEDGERS

AS_OF = "2026-01-01"
HEADER = "entry_id,customer_id,posted_at,kind,amount\n"


@pytest.fixture
def member(store, tmp_path):
    body = "customer_id,name,created_at\n0000007,王芳,2025-01-01\n"
    import_file(store, "customer", write(tmp_path, "c.csv", body), as_of=AS_OF)
    return store


def test_a_positive_spend_is_refused_saying_which_sign_each_kind_takes(member, tmp_path):
    body = HEADER + "SV1,0000007,2025-06-01 10:00,top_up,500.00\nSV2,0000007,2025-06-02,spend,200\n"
    with pytest.raises(LoadRejectedError) as info:
        import_file(member, "stored_value_ledger", write(tmp_path, "sv.csv", body), as_of=AS_OF)
    reject = info.value.rejects.iloc[0]
    assert (reject["line"], reject["column"], reject["rule"]) == (3, "amount", "sign")
    assert (
        "sv.csv:3 amount: amount '200' has the wrong sign for its kind "
        "(top_up and refund are positive, spend is negative, adjust either)"
    ) in str(info.value)
    assert stored_value_balance(member).empty


def test_signed_rows_load_and_the_balance_is_their_sum(member, tmp_path):
    body = (
        HEADER
        + "SV1,0000007,2025-06-01,top_up,1000\nSV2,0000007,2025-06-02,spend,-200\n"
        + "SV3,0000007,2025-06-03,refund,50\nSV4,0000007,2025-06-04,adjust,-250\n"
    )
    import_file(member, "stored_value_ledger", write(tmp_path, "sv.csv", body), as_of=AS_OF)
    assert stored_value_balance(member).to_dict() == {"0000007": 600.0}


KINDS_AND_AMOUNTS = [
    (kind, amount) for kind in LEDGERS["stored_value_ledger"].signs for amount in (-5.0, 5.0)
]


@pytest.mark.parametrize(("kind", "amount"), KINDS_AND_AMOUNTS)
def test_the_import_refuses_exactly_what_the_posting_api_refuses(member, kind, amount, tmp_path):
    row = {
        "entry_id": "E1",
        "customer_id": "0000007",
        "posted_at": pd.Timestamp("2025-06-01"),
        "kind": kind,
        "amount": amount,
    }
    # A balance first, so that a spend is judged by its sign, not by the overdraft rule.
    post_stored_value(member, [{**row, "entry_id": "T0", "kind": "top_up", "amount": 100.0}])
    try:
        post_stored_value(member, [{**row, "entry_id": "P1"}])
        api_refuses = False
    except LedgerError:
        api_refuses = True
    try:
        import_frame(
            member, "stored_value_ledger", pd.DataFrame([row]), as_of=AS_OF, reject_dir=tmp_path
        )
        import_refuses = False
    except LoadRejectedError as exc:
        import_refuses = bool((exc.rejects["rule"] == "sign").any())
    assert import_refuses == api_refuses
