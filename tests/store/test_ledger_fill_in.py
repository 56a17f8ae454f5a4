"""Columns that arrive after a ledger row (refunds, redemptions, responses) fill in once."""

from pathlib import Path

import pytest
from import_files import rows, write

from crm_ml.errors import LoadRejectedError
from crm_ml.features import customer_features
from crm_ml.store.loading import LoadResult, import_file

AS_OF = "2025-06-01"
FEATURES_AS_OF = "2025-05-01"  # after the refund of 2025-04-01

BASICS = [
    ("customer", "customer_id,name,created_at\n0001,张三,2024-01-01\n0002,李四,2024-01-01\n"),
    ("product", "product_id,category\nP1,beauty\n"),
    (
        "orders",
        "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O1,0001,2025-03-01 10:00,online,300,300\nO2,0002,2025-03-02 10:00,online,100,100\n",
    ),
    ("campaign", "campaign_id,name,channel,start_at,end_at\nK1,春季,sms,2025-03-01,2025-03-31\n"),
]
ITEM_HEADER = "order_id,line_no,product_id,quantity,amount,refund_amount,refunded_at\n"
ITEMS = ITEM_HEADER + "O1,1,P1,1,200,0,\nO1,2,P1,1,100,0,\nO2,1,P1,1,100,,\n"
COUPON_HEADER = "coupon_id,customer_id,issued_at,face_value,redeemed_at,order_id\n"
CONTACT_HEADER = (
    "campaign_id,customer_id,contact_group,contacted_at,responded,responded_at,order_id\n"
)


def load(store, folder: Path, table: str, body: str, name: str | None = None) -> LoadResult:
    return import_file(store, table, write(folder, name or f"{table}.csv", body), as_of=AS_OF)


@pytest.fixture
def sold(store, tmp_path):
    """Two customers, a three-line order O1 of 0001 and a one-line order O2 of 0002."""
    for table, body in BASICS:
        load(store, tmp_path, table, body)
    load(store, tmp_path, "order_item", ITEMS)
    return store


def counts(result: LoadResult) -> tuple[int, int, int, int]:
    return (result.inserted, result.updated, result.unchanged, result.rejected)


def test_a_later_refund_fills_in_the_line_it_returns(sold, tmp_path):
    refund = ITEM_HEADER + "O1,1,P1,1,200,50,2025-04-01 10:00\nO1,2,P1,1,100,0,\n"

    result = load(sold, tmp_path, "order_item", refund, "refunds.csv")

    assert counts(result) == (0, 1, 1, 0)
    assert rows(sold, "select order_id, line_no, refund_amount from order_item order by 1, 2") == [
        ("O1", 1, 50.0),
        ("O1", 2, 0.0),
        ("O2", 1, 0.0),
    ]
    assert rows(sold, "select rows_updated from load_batch where source like '%refunds.csv'") == [
        (1,)
    ]
    again = load(sold, tmp_path, "order_item", refund, "refunds_again.csv")
    assert counts(again) == (0, 0, 2, 0)


def test_a_refund_filled_in_later_counts_in_refund_rate(sold, tmp_path):
    before = customer_features(sold, FEATURES_AS_OF, groups=["value"])
    assert before.loc["0001", "refund_rate"] == 0.0

    load(sold, tmp_path, "order_item", ITEM_HEADER + "O1,1,P1,1,200,75,2025-04-01 10:00\n")

    after = customer_features(sold, FEATURES_AS_OF, groups=["value"])
    assert after.loc["0001", "refund_rate"] == pytest.approx(75 / 300)
    assert after.loc["0002", "refund_rate"] == 0.0
    assert rows(sold, "select count(*), sum(amount) from order_item") == [(3, 400.0)]


def test_a_refund_already_set_is_not_changed(sold, tmp_path):
    load(sold, tmp_path, "order_item", ITEM_HEADER + "O1,1,P1,1,200,50,2025-04-01 10:00\n")
    before = rows(sold, "select * from order_item order by order_id, line_no")

    with pytest.raises(LoadRejectedError) as info:
        load(sold, tmp_path, "order_item", ITEM_HEADER + "O1,1,P1,1,200,80,2025-04-01 10:00\n")

    message = info.value.rejects["message"].iloc[0]
    assert message == (
        "'O1 / 1' is already in the store with a different refund_amount: order_item is "
        "append-only except that refund_amount, refunded_at may be filled in once, where the "
        "store has none yet (a repeated key is never applied twice; the store has "
        "refund_amount 50.0, the file refund_amount 80.0); an import cannot change it, and the "
        "row must not be imported again under a new key (that would count it twice)"
    )
    assert "correcting entry" not in message
    assert rows(sold, "select * from order_item order by order_id, line_no") == before


def test_other_columns_of_a_line_are_still_refused(sold, tmp_path):
    changed = ITEM_HEADER + "O1,1,P1,2,200,50,2025-04-01 10:00\n"

    with pytest.raises(LoadRejectedError, match=r"different quantity: order_item is append-only"):
        load(sold, tmp_path, "order_item", changed)

    assert rows(sold, "select quantity, refund_amount from order_item where line_no = 1") == [
        (1, 0.0),
        (1, 0.0),
    ]


def test_a_coupon_redemption_fills_in_once(sold, tmp_path):
    load(sold, tmp_path, "coupon", COUPON_HEADER + "CP1,0002,2025-03-01,20,,\n")
    redeemed = COUPON_HEADER + "CP1,0002,2025-03-01,20,2025-03-02 10:00,O2\n"

    assert counts(load(sold, tmp_path, "coupon", redeemed, "redeemed.csv")) == (0, 1, 0, 0)

    assert rows(sold, "select coupon_id, order_id from coupon") == [("CP1", "O2")]
    moved = COUPON_HEADER + "CP1,0002,2025-03-01,20,2025-03-02 10:00,O1\n"
    with pytest.raises(LoadRejectedError, match=r"the store has order_id O2, the file order_id O1"):
        load(sold, tmp_path, "coupon", moved, "moved.csv")


def test_a_campaign_response_fills_in_once(sold, tmp_path):
    load(sold, tmp_path, "campaign_contact", CONTACT_HEADER + "K1,0002,treatment,2025-03-01,,,\n")
    responded = CONTACT_HEADER + "K1,0002,treatment,2025-03-01,1,2025-03-02 10:00,O2\n"

    result = load(sold, tmp_path, "campaign_contact", responded, "responded.csv")

    assert counts(result) == (0, 1, 0, 0)
    assert rows(sold, "select responded, order_id from campaign_contact") in (
        [(True, "O2")],
        [(1, "O2")],  # SQLite returns booleans as integers
    )


def test_an_owner_assignment_is_closed_later(sold, tmp_path):
    header = "customer_id,valid_from,owner_id,valid_to\n"
    load(sold, tmp_path, "customer_owner", header + "0001,2025-01-01,E1,\n")

    result = load(
        sold, tmp_path, "customer_owner", header + "0001,2025-01-01,E1,2025-04-01\n", "o2.csv"
    )

    assert counts(result) == (0, 1, 0, 0)
    assert rows(sold, "select owner_id from customer_owner where valid_to is not null") == [("E1",)]


def test_points_conflicts_still_advise_an_adjust_entry(sold, tmp_path):
    header = "entry_id,customer_id,posted_at,kind,points\n"
    load(sold, tmp_path, "points_ledger", header + "E1,0001,2025-03-01,earn,100\n")

    with pytest.raises(LoadRejectedError, match=r"post an adjust entry with a new entry_id"):
        load(sold, tmp_path, "points_ledger", header + "E1,0001,2025-03-01,earn,200\n", "p2.csv")
