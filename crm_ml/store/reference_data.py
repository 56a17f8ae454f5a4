"""What the import reference says that no code states: column notes, example rows.

Rendered into ``docs/import.md`` by :mod:`crm_ml.store.reference`. Everything else
on that page is read from the importer; keep here only what a data engineer needs
and the code cannot tell (what a column means, a row a real export would hold).
A test loads every example row into a scratch store, in load order.
"""

from __future__ import annotations

from crm_ml.store import schema

#: What a column means, where neither its name nor the schema says it.
COLUMN_NOTES: dict[tuple[str, str], str] = {
    ("customer", "customer_id"): "The retailer's customer or member number, kept as text.",
    ("customer", "gender"): "The features read it as female, male or unknown (see `gender` "
    "in docs/features.md).",
    ("customer", "city_tier"): "1 for a tier-1 city (北京, 上海 …) up to 6.",
    ("store_location", "city_tier"): "As the customer's: 1 for a tier-1 city up to 6.",
    ("customer", "acquisition_channel"): "The features read "
    f"{', '.join(f'`{c}`' for c in schema.CHANNELS)} and count anything else as `other`.",
    ("customer", "is_member"): "Has joined the loyalty programme.",
    ("customer", "created_at"): "When the customer was registered.",
    ("customer_identity", "value"): "Phones as 13800138000, +86 138 0013 8000 or "
    "138-0013-8000 (stored as +86…); mobiles only, no landlines.",
    ("customer_identity", "verified"): "Verified phones and member cards are what "
    "`crm-ml customers merge` joins duplicate customers on.",
    ("custom_field_value", "value"): "Must read as the field's `data_type`.",
    ("customer_owner", "owner_id"): "The account manager; one name per id.",
    ("customer_owner", "valid_to"): "Blank while the assignment lasts; periods of one "
    "customer must not overlap.",
    ("consent", "updated_at"): "When the decision was made: the latest row at a date is "
    "the customer's state then.",
    ("consent", "status"): "`unknown` means no consent; a warning names the lines of "
    "answers not recognised.",
    ("product", "category"): "Any category loads; only the affinity categories "
    f"({', '.join(f'`{c}`' for c in schema.MAJOR_CATEGORIES)}) drive the affinity "
    "features and `likes_*` tags.",
    ("orders", "customer_id"): "Required: guest orders (散客, no customer) cannot be loaded.",
    ("orders", "store_id"): "The physical store, if any.",
    ("orders", "gross_amount"): "Before discounts.",
    ("orders", "net_amount"): "What was paid: every revenue feature sums it.",
    ("order_item", "amount"): "The line's amount.",
    ("order_item", "refund_amount"): "Refunded on this line; see *Returns*.",
    ("behavior_event", "detail"): "Free text (a search term, a complaint …).",
    ("points_ledger", "entry_id"): "Posting the same entry_id twice credits once.",
    ("stored_value_ledger", "amount"): "The balance is the sum of `amount`.",
    ("tier", "level"): "Higher is better; one tier per level.",
    ("tier", "min_spend_12m"): "Rolling 12-month net spend that qualifies for the tier.",
    ("campaign", "control_share"): "Share of the drawn customers held out as a control group.",
    ("campaign_contact", "contact_group"): "`treatment` was contacted, `control` held out.",
    ("customer_change", "field"): "A column of `customer` other than its id.",
}

#: One example row per table, as a file would give it (blank: the cell is left empty).
# fmt: off
EXAMPLES: dict[str, dict[str, str]] = {
    "customer": {
        "customer_id": "0000001", "name": "王芳", "gender": "女", "birth_date": "1990-05-12",
        "city": "杭州", "city_tier": "2", "acquisition_channel": "mini_program",
        "is_member": "Y", "member_since": "2024-01-15 10:30:00", "status": "active",
        "merged_into": "", "created_at": "2024-01-15 10:30:00",
    },
    "customer_identity": {
        "customer_id": "0000001", "kind": "phone", "value": "138-0013-8000",
        "verified": "Y", "created_at": "2024-01-15 10:30:00",
    },
    "custom_field": {
        "field_id": "F01", "name": "baby_birthday", "label": "宝宝生日", "data_type": "date",
    },
    "custom_field_value": {
        "customer_id": "0000001", "field_id": "F01", "value": "2023-08-01",
        "updated_at": "2024-01-15 10:30:00",
    },
    "customer_owner": {
        "customer_id": "0000001", "valid_from": "2024-02-01 00:00:00", "owner_id": "AM001",
        "owner_name": "李娜", "valid_to": "",
    },
    "consent": {
        "customer_id": "0000001", "channel": "sms", "purpose": "marketing",
        "updated_at": "2024-01-15 10:30:00", "status": "同意", "source": "门店注册",
    },
    "product": {
        "product_id": "P001", "name": "保湿面霜", "category": "美妆", "brand": "某品牌",
        "list_price": "199.00",
    },
    "store_location": {
        "store_id": "S001", "name": "杭州西湖店", "city": "杭州", "city_tier": "2",
        "opened_at": "2020-09-01 00:00:00",
    },
    "orders": {
        "order_id": "SO0001", "customer_id": "0000001", "ordered_at": "2025/3/7 14:05",
        "channel": "offline", "store_id": "S001", "gross_amount": "398.00",
        "discount_amount": "40.00", "net_amount": "358.00",
    },
    "order_item": {
        "order_id": "SO0001", "line_no": "1", "product_id": "P001", "quantity": "2",
        "amount": "398.00", "discount_amount": "40.00", "refund_amount": "", "refunded_at": "",
    },
    "behavior_event": {
        "event_id": "E0001", "customer_id": "0000001", "event_type": "product_view",
        "occurred_at": "2025-03-06 20:11:00", "channel": "mini_program",
        "touchpoint": "商品详情页", "product_id": "P001", "detail": "",
    },
    "tier": {
        "tier_id": "SILVER", "name": "silver", "label": "银卡", "level": "2",
        "min_spend_12m": "2000",
    },
    "tier_change": {
        "customer_id": "0000001", "changed_at": "2025-03-08 00:00:00", "from_tier": "",
        "to_tier": "SILVER", "direction": "initial", "reason": "年度消费达标",
    },
    "points_ledger": {
        "entry_id": "PT0001", "customer_id": "0000001", "posted_at": "2025-03-07 14:05:00",
        "kind": "earn", "points": "358", "order_id": "SO0001",
        "expires_at": "2026-12-31 23:59:59", "note": "消费积分",
    },
    "stored_value_ledger": {
        "entry_id": "SV0001", "customer_id": "0000001", "posted_at": "2025-03-01 10:00:00",
        "kind": "top_up", "amount": "500.00", "order_id": "",
    },
    "campaign": {
        "campaign_id": "CMP2503", "name": "三八节美妆券", "channel": "sms",
        "purpose": "marketing", "segment_id": "", "start_at": "2025-03-01 00:00:00",
        "end_at": "2025-03-08 23:59:59", "control_share": "0.1",
    },
    "coupon": {
        "coupon_id": "CP0001", "customer_id": "0000001", "campaign_id": "CMP2503",
        "issued_at": "2025-03-01 09:00:00", "expires_at": "2025-03-31 23:59:59",
        "face_value": "20.00", "redeemed_at": "2025-03-07 14:05:00", "order_id": "SO0001",
    },
    "campaign_contact": {
        "campaign_id": "CMP2503", "customer_id": "0000001", "contact_group": "treatment",
        "contacted_at": "2025-03-01 09:00:00", "responded": "Y",
        "responded_at": "2025-03-07 14:05:00", "order_id": "SO0001",
    },
    "customer_merge": {
        "merged_id": "0000002", "surviving_id": "0000001", "merged_at": "2025-04-01 09:00:00",
        "reason": "same verified phone", "actor": "ops@example.com",
    },
    "customer_change": {
        "change_id": "CH0001", "customer_id": "0000001", "field": "city", "old_value": "宁波",
        "new_value": "杭州", "changed_at": "2025-04-02 09:00:00", "actor": "import",
    },
    "erased_customer": {
        "customer_id": "0000001", "erased_at": "2025-04-03 09:00:00", "change_id": "CH0001",
    },
}
# fmt: on

#: Time stamps as exports write them; the page shows which the parser accepts and how.
TIMESTAMP_SAMPLES = (
    "2025-03-07 14:05:00",
    "2025-03-07 14:05",
    "2025/3/7 14:05",
    "2025-03-07",
    "2025-03-07 14:05:00.250",
    "2025-03-07T14:05:00+08:00",
    "2025-03-07T06:05:00Z",
    "2025年3月7日 14:05",
    "2025.03.07 14:05",
    "20250307 140500",
    "07/03/2025 14:05",
    "3/7/2025 2:05 PM",
)
SAMPLE_TIMEZONE = "Asia/Shanghai"
