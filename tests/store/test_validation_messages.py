"""Rejects of common Chinese export conventions say what to do instead."""

import pytest
from import_files import write

from crm_ml.errors import LoadRejectedError
from crm_ml.store.loading import import_file

AS_OF = "2025-01-01"
RETURNS = (
    "; a return is not loaded as a negative order or line: set refund_amount and refunded_at "
    "on the order_item line it returns (import that line again with them filled in)"
)


@pytest.fixture
def loaded(store, tmp_path):
    import_file(
        store,
        "customer",
        write(tmp_path, "c.csv", "customer_id,name,created_at\nC1,张三,2024-01-01\n"),
        as_of=AS_OF,
    )
    import_file(store, "product", write(tmp_path, "p.csv", "product_id,category\nP1,food\n"))
    import_file(
        store,
        "orders",
        write(
            tmp_path,
            "o.csv",
            "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
            "O1,C1,2024-03-01,online,50,50\n",
        ),
        as_of=AS_OF,
    )
    return store


def messages(error: LoadRejectedError) -> list[tuple]:
    frame = error.rejects
    return [tuple(r) for r in frame[["line", "column", "rule", "message"]].itertuples(index=False)]


def test_a_return_slip_as_a_negative_order_says_how_returns_are_loaded(loaded, tmp_path):
    body = (
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "R1,C1,2024-03-02,online,-50.00,0\n"
    )

    with pytest.raises(LoadRejectedError) as info:
        import_file(loaded, "orders", write(tmp_path, "returns.csv", body), as_of=AS_OF)

    assert messages(info.value) == [
        (2, "gross_amount", "range", "'-50.00' is out of range: expected at least 0" + RETURNS)
    ]


def test_a_negative_line_says_how_returns_are_loaded(loaded, tmp_path):
    body = "order_id,line_no,product_id,quantity,amount\nO1,2,P1,-1,-50\n"

    with pytest.raises(LoadRejectedError) as info:
        import_file(loaded, "order_item", write(tmp_path, "lines.csv", body), as_of=AS_OF)

    assert messages(info.value) == [
        (2, "quantity", "range", "'-1' is out of range: expected more than 0" + RETURNS)
    ]


def test_a_landline_is_refused_as_a_phone_identity_with_why(loaded, tmp_path):
    body = "customer_id,kind,value,created_at\nC1,phone,021-64381234,2024-01-01\n"

    with pytest.raises(LoadRejectedError) as info:
        import_file(loaded, "customer_identity", write(tmp_path, "ids.csv", body), as_of=AS_OF)

    assert messages(info.value) == [
        (
            2,
            "value",
            "phone",
            "'021-64381234' is not a phone number (expected e.g. 13800138000 or +44…); "
            "only mobile numbers are accepted as phone identities, not landlines: "
            "leave landlines out of customer_identity",
        )
    ]
