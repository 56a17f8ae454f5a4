"""Problems that do not reject a row: categories no feature reads, amounts that do not add up."""

from datetime import datetime

import pandas as pd
import pytest
from import_files import rows, write
from sqlalchemy import insert

from crm_ml.store.loading import import_file, import_frame
from crm_ml.store.schema import ErasedCustomer

AS_OF = "2025-01-01"


def test_chinese_category_names_are_stored_as_codes(store, tmp_path):
    body = (
        "product_id,category\nP1,美妆\nP2, 母婴 \nP3,食品饮料\nP4,服饰\nP5,数码家电\nP6,家居\n"
        "P7,Beauty\n"
    )

    result = import_file(store, "product", write(tmp_path, "products.csv", body), as_of=AS_OF)

    assert result.warnings == ()
    assert rows(store, "select product_id, category from product order by 1") == [
        ("P1", "beauty"),
        ("P2", "maternity_baby"),
        ("P3", "food"),
        ("P4", "apparel"),
        ("P5", "electronics"),
        ("P6", "home"),
        ("P7", "beauty"),
    ]


def test_other_categories_load_with_a_warning_that_names_them(store, tmp_path):
    body = "product_id,category\nP1,宠物\nP2,宠物\nP3,图书\nP4,美妆\n"

    result = import_file(store, "product", write(tmp_path, "products.csv", body), as_of=AS_OF)

    assert (result.inserted, result.rejected) == (4, 0)
    (warning,) = result.warnings
    assert warning.startswith(
        "3 product(s) have a category that no affinity feature reads: '宠物' (2), '图书' (1). "
        "They were stored as given and count in top_category_share and categories_distinct, "
        "but only the categories maternity_baby, beauty, food, apparel, electronics, home "
        "drive the affinity_* and days_since_* features and the likes_* tags"
    )
    assert "美妆 → beauty" in warning
    assert "warning: 3 product(s)" in result.summary()
    assert rows(store, "select category from product order by product_id") == [
        ("宠物",),
        ("宠物",),
        ("图书",),
        ("beauty",),
    ]


ORDERS = "order_id,customer_id,ordered_at,channel,gross_amount,discount_amount,net_amount\n"


@pytest.fixture
def customer(store, tmp_path):
    body = "customer_id,name,created_at\nC1,张三,2024-01-01\n"
    import_file(store, "customer", write(tmp_path, "customers.csv", body), as_of=AS_OF)
    return store


def test_orders_whose_net_is_not_gross_minus_discount_load_with_a_warning(customer, tmp_path):
    body = ORDERS + (
        "O1,C1,2024-03-01,online,100.00,10.00,90.00\n"
        "O2,C1,2024-03-01,online,100.00,10.00,200.00\n"
        "O3,C1,2024-03-01,online,19.99,0.98,19.01\n"
        "O4,C1,2024-03-01,online,50,,45.5\n"
        "R1,C1,2024-03-02,online,-50,0,0\n"  # rejected for its sign, not warned about
    )

    result = import_file(
        customer, "orders", write(tmp_path, "orders.csv", body), as_of=AS_OF, max_reject_rate=0.2
    )

    assert (result.inserted, result.rejected) == (4, 1)
    assert result.warnings == (
        "2 order(s) have a net_amount that is not gross_amount - discount_amount "
        "(line 3: 100.00 - 10.00 = 90.00 expected, 200.00 found; "
        "line 5: 50.00 - 0.00 = 50.00 expected, 45.50 found). They are not rejected for it; "
        "net_amount is what every revenue feature sums, so correct the rows unless the "
        "difference is real (a shipping fee, or a payment by points or stored value).",
    )


def test_an_erased_customers_rows_are_skipped_with_a_warning_not_rejected(customer, tmp_path):
    with customer.begin() as conn:
        conn.execute(
            insert(ErasedCustomer).values(
                customer_id="C1", erased_at=datetime(2024, 12, 1), change_id="erasure:x"
            )
        )
    extract = pd.DataFrame(
        {"customer_id": ["C2", "C1"], "name": ["李四", "张三丰"], "created_at": ["2024-02-01"] * 2}
    )

    result = import_frame(
        customer, "customer", extract, source="crm_extract", as_of=AS_OF, reject_dir=tmp_path
    )

    assert (result.inserted, result.updated, result.rejected) == (1, 0, 0)
    assert result.warnings == (
        "1 row(s) of crm_extract (row 2) belong to 1 customer(s) erased on request and were "
        "skipped: 'C1'. Loading them would put back their name and profile, which the erasure "
        "removed. Remove these customers from the source extract; their orders, points and "
        "events still load.",
    )
    assert rows(customer, "select customer_id, name from customer order by 1") == [
        ("C1", "张三"),
        ("C2", "李四"),
    ]
    orders = ORDERS + "O1,C1,2024-03-01,online,100.00,10.00,90.00\n"
    loaded = import_file(customer, "orders", write(tmp_path, "orders.csv", orders), as_of=AS_OF)
    assert (loaded.inserted, loaded.warnings) == (1, ())
