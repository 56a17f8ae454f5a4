"""Hypothesis strategies for changes that happen on or after ``AS_OF``.

A :class:`Change` appends rows dated on or after ``AS_OF`` and alters rows
whose date (or whose late field: a refund, a redemption, a response, the end
of an owner assignment, a membership start) is on or after ``AS_OF``. No such
change may move a feature at ``AS_OF``.

Left out on purpose: ``customer_merge`` (merges are identity corrections,
applied whatever their date) and the ``old_value`` of an existing
``customer_change`` row (it states the value *before* the change). Profile
changes are generated the way a CRM writes them: the customer row is updated
and the change is logged with the previous value.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from crm_ml.store.schema import Base

from .rows import Rows, complete
from .sample import AS_OF, sample_tables

WHO = st.sampled_from(["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "zz"])
FUTURE = st.one_of(
    st.just(AS_OF),
    st.integers(0, 400 * 86400).map(lambda s: AS_OF + timedelta(seconds=s)),
)
MONEY = st.integers(0, 100_000).map(lambda cents: cents / 100)
EVENTS = ["page_view", "product_view", "search", "add_to_cart", "feedback", "complaint"]


@dataclass
class Change:
    """Rows to append, and (table, before, after) replacements of existing rows."""

    appended: Rows = field(default_factory=dict)
    replaced: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.appended.setdefault(table, []).append(complete(table, row))

    def apply_to(self, tables: Rows) -> Rows:
        """The tables after the change (for the reference implementation)."""
        out = {
            name: [complete(name, r) for r in rows] for name, rows in copy.deepcopy(tables).items()
        }
        for table, before, after in self.replaced:
            out[table] = [after if r == before else r for r in out[table]]
        for table, rows in self.appended.items():
            out.setdefault(table, []).extend(rows)
        return out


def primary_key(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in Base.metadata.tables[table].primary_key.columns)


def _later(draw: Any, start: datetime) -> datetime:
    return max(start, AS_OF) + timedelta(seconds=draw(st.integers(0, 200 * 86400)))


def _append_one(draw: Any, k: int, change: Change) -> None:
    kind = draw(
        st.sampled_from(
            [
                "orders",
                "behavior_event",
                "points_ledger",
                "tier_change",
                "coupon",
                "stored_value_ledger",
                "campaign_contact",
                "consent",
                "customer_owner",
                "customer",
            ]
        )
    )
    who, at = draw(WHO), draw(FUTURE)
    if kind == "orders":
        gross, refund = draw(MONEY), draw(st.booleans())
        change.add(
            "orders",
            dict(
                order_id=f"fo{k}",
                customer_id=who,
                ordered_at=at,
                gross_amount=gross,
                channel=draw(st.sampled_from(["online", "offline"])),
            ),
        )
        change.add(
            "order_item",
            dict(
                order_id=f"fo{k}",
                line_no=1,
                product_id=draw(st.sampled_from(["p1", "p5", "p404"])),
                amount=gross,
                refund_amount=gross if refund else 0.0,
                refunded_at=_later(draw, at) if refund else None,
            ),
        )
    elif kind == "behavior_event":
        change.add(
            kind,
            dict(
                event_id=f"fe{k}",
                customer_id=who,
                occurred_at=at,
                event_type=draw(st.sampled_from(EVENTS)),
            ),
        )
    elif kind == "points_ledger":
        sign, points = (
            draw(st.sampled_from([("earn", 1), ("redeem", -1), ("expire", -1)])),
            draw(st.integers(1, 999)),
        )
        change.add(
            kind,
            dict(
                entry_id=f"fp{k}",
                customer_id=who,
                posted_at=at,
                kind=sign[0],
                points=sign[1] * points,
                expires_at=_later(draw, at),
            ),
        )
    elif kind == "tier_change":
        change.add(
            kind,
            dict(
                customer_id=who,
                changed_at=at,
                to_tier=draw(st.sampled_from(["silver", "gold", "black"])),
                direction=draw(st.sampled_from(["initial", "up", "down"])),
            ),
        )
    elif kind == "coupon":
        change.add(
            kind,
            dict(
                coupon_id=f"fk{k}",
                customer_id=who,
                issued_at=at,
                redeemed_at=draw(st.sampled_from([None, _later(draw, at)])),
            ),
        )
    elif kind == "stored_value_ledger":
        spend = draw(st.booleans())
        change.add(
            kind,
            dict(
                entry_id=f"fs{k}",
                customer_id=who,
                posted_at=at,
                kind="spend" if spend else "top_up",
                amount=-draw(MONEY) if spend else draw(MONEY),
            ),
        )
    elif kind == "campaign_contact":
        responded = draw(st.booleans())
        change.add(
            kind,
            dict(
                campaign_id=f"fm{k}",
                customer_id=who,
                contacted_at=at,
                responded=responded,
                responded_at=_later(draw, at) if responded else None,
                contact_group=draw(st.sampled_from(["treatment", "control"])),
            ),
        )
    elif kind == "consent":
        change.add(
            kind,
            dict(
                customer_id=who,
                channel=draw(st.sampled_from(["sms", "email", "wechat"])),
                updated_at=at,
                status=draw(st.sampled_from(["granted", "withdrawn", "unknown"])),
            ),
        )
    elif kind == "customer_owner":
        change.add(
            kind,
            dict(
                customer_id=who,
                valid_from=at,
                owner_id="owner9",
                valid_to=draw(st.sampled_from([None, at + timedelta(days=1)])),
            ),
        )
    else:
        change.add(
            "customer", dict(customer_id=f"fc{k}", created_at=at, gender="F", is_member=True)
        )


def _alterations(base: Rows) -> list[tuple[str, dict[str, Any]]]:
    """Existing rows that may be altered, with the field that makes them alterable."""
    out: list[tuple[str, dict[str, Any]]] = []
    dated = {
        "orders": "ordered_at",
        "behavior_event": "occurred_at",
        "points_ledger": "posted_at",
        "coupon": "issued_at",
        "stored_value_ledger": "posted_at",
        "campaign_contact": "contacted_at",
        "tier_change": "changed_at",
        "consent": "updated_at",
        "customer_owner": "valid_from",
        "customer": "created_at",
    }
    for table, column in dated.items():
        out += [(table, r) for r in base[table] if r[column] >= AS_OF]
    out += [
        ("order_item", r)
        for r in base["order_item"]
        if r["refunded_at"] is None or r["refunded_at"] >= AS_OF
    ]
    out += [
        ("coupon", r)
        for r in base["coupon"]
        if r["issued_at"] < AS_OF and (r["redeemed_at"] is None or r["redeemed_at"] >= AS_OF)
    ]
    out += [
        ("campaign_contact", r)
        for r in base["campaign_contact"]
        if r["contacted_at"] < AS_OF
        and (not r["responded"] or (r["responded_at"] is not None and r["responded_at"] >= AS_OF))
    ]
    out += [
        ("customer_owner", r)
        for r in base["customer_owner"]
        if r["valid_from"] < AS_OF and (r["valid_to"] is None or r["valid_to"] >= AS_OF)
    ]
    out += [
        ("customer", r)
        for r in base["customer"]
        if r["created_at"] < AS_OF and r["member_since"] is None and not r["is_member"]
    ]
    return out


def _alter(draw: Any, table: str, row: dict[str, Any]) -> dict[str, Any]:
    new = dict(row)
    if table == "order_item":
        new.update(refund_amount=row["amount"], refunded_at=_later(draw, AS_OF))
    elif table == "customer" and row["created_at"] < AS_OF:
        new.update(is_member=True, member_since=draw(FUTURE))
    elif table == "customer":
        new.update(
            gender=draw(st.sampled_from(["F", "M", None])),
            city_tier=draw(st.sampled_from([None, 2])),
        )
    elif table == "coupon" and row["issued_at"] < AS_OF:
        new.update(redeemed_at=_later(draw, AS_OF))
    elif table == "campaign_contact" and row["contacted_at"] < AS_OF:
        new.update(responded=True, responded_at=_later(draw, AS_OF))
    elif table == "customer_owner" and row["valid_from"] < AS_OF:
        new.update(valid_to=draw(st.sampled_from([None, AS_OF, AS_OF + timedelta(days=5)])))
    elif "customer_id" not in [c.name for c in Base.metadata.tables[table].primary_key.columns]:
        new.update(customer_id=draw(WHO))
        for money in ("gross_amount", "net_amount", "amount"):
            if money in new and table != "stored_value_ledger":
                new[money] = draw(MONEY)
    else:
        for name in ("to_tier", "status", "owner_id"):
            if name in new:
                new[name] = draw(
                    st.sampled_from(
                        {
                            "to_tier": ["silver", "gold", "black"],
                            "status": ["granted", "withdrawn"],
                            "owner_id": ["owner1", "owner7"],
                        }[name]
                    )
                )
    return new


def _profile_change(draw: Any, k: int, base: Rows, change: Change) -> None:
    """Update a customer's gender after ``AS_OF`` and log the change, as a CRM would."""
    who = draw(st.sampled_from(["c1", "c7", "c10"]))
    before = next(complete("customer", r) for r in base["customer"] if r["customer_id"] == who)
    after = {**before, "gender": draw(st.sampled_from(["M", "女", None]))}
    change.replaced.append(("customer", before, after))
    change.add(
        "customer_change",
        dict(
            change_id=f"fch{k}",
            customer_id=who,
            field="gender",
            old_value=before["gender"],
            new_value=after["gender"],
            changed_at=draw(FUTURE),
        ),
    )


@st.composite
def future_changes(draw: Any) -> Change:
    """Append and alter rows dated on or after ``AS_OF`` in the sample store."""
    base = {name: [complete(name, r) for r in rows] for name, rows in sample_tables().items()}
    change = Change()
    for k in range(draw(st.integers(0, 5))):
        _append_one(draw, k, change)
    candidates = _alterations(base)
    chosen = draw(st.lists(st.integers(0, len(candidates) - 1), max_size=4, unique=True))
    for i in chosen:
        table, row = candidates[i]
        if all(before != row for _, before, _ in change.replaced):
            change.replaced.append((table, row, _alter(draw, table, row)))
    if draw(st.booleans()) and not any(t == "customer" for t, _, _ in change.replaced):
        _profile_change(draw, 0, base, change)
    _drop_key_clashes(base, change)
    return change


def _drop_key_clashes(base: Rows, change: Change) -> None:
    for table, rows in change.appended.items():
        taken = {primary_key(table, r) for r in base.get(table, [])}
        kept = []
        for row in rows:
            if primary_key(table, row) not in taken:
                taken.add(primary_key(table, row))
                kept.append(row)
        change.appended[table] = kept
    orders = {r["order_id"] for r in change.appended.get("orders", [])}
    change.appended["order_item"] = [
        r for r in change.appended.get("order_item", []) if r["order_id"] in orders
    ]
