"""Row builders for the analysis tests (tiny hand-written rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def ts(text: str) -> datetime:
    """A naive UTC datetime from ISO text."""
    return datetime.fromisoformat(text)


def order(order_id: str, customer_id: str, at: str, net: float) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "ordered_at": ts(at),
        "channel": "online",
        "gross_amount": net,
        "discount_amount": 0.0,
        "net_amount": net,
    }


def refund(order_id: str, amount: float, at: str, refund_amount: float) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "line_no": 1,
        "product_id": "p1",
        "quantity": 1,
        "amount": amount,
        "refund_amount": refund_amount,
        "refunded_at": ts(at),
    }
