"""A slow, obviously-correct pandas reference of every feature group.

It reads the same completed rows the test inserted (never the store), walks
customer by customer, and applies each definition literally. The engines'
results must match it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from crm_ml.features.build import conform
from crm_ml.features.catalog import feature_list
from crm_ml.features.spec import CONSENT_FEATURE_CHANNELS, MAJOR_CATEGORIES, FeatureWindows

from .rows import completed

NAN = float("nan")
EPOCH = datetime(1970, 1, 1)


def secs(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(seconds=1)


def days(later: datetime, earlier: datetime) -> float:
    return (secs(later) - secs(earlier)) / 86400.0


def ratio(num: float, den: float) -> float:
    return num / den if den else NAN


class Reference:
    def __init__(self, tables: dict[str, list[dict[str, Any]]], as_of: datetime, w: FeatureWindows):
        self.t = completed(tables)
        self.as_of, self.w = as_of, w
        self.survivor = self._survivors()

    # ---------------------------------------------------------------- identity
    def _survivors(self) -> dict[str, str]:
        step = {r["merged_id"]: r["surviving_id"] for r in self.t.get("customer_merge", [])}
        for c in self.t["customer"]:
            if c["status"] == "merged" and c["merged_into"] and c["customer_id"] not in step:
                step[c["customer_id"]] = c["merged_into"]
        out = {}
        for start in step:
            cur = start
            while cur in step:
                cur = step[cur]
            out[start] = cur
        return out

    def who(self, customer_id: str) -> str:
        return self.survivor.get(customer_id, customer_id)

    def rows(self, table: str, cid: str, time_col: str) -> list[dict[str, Any]]:
        """The customer's (merged) rows of ``table`` dated strictly before as_of."""
        return [
            r
            for r in self.t.get(table, [])
            if self.who(r["customer_id"]) == cid and r[time_col] < self.as_of
        ]

    def population(self) -> dict[str, datetime]:
        out = {}
        for c in self.t["customer"]:
            cid = c["customer_id"]
            if c["status"] != "active" or cid in self.survivor:
                continue
            created = min(
                x["created_at"] for x in self.t["customer"] if self.who(x["customer_id"]) == cid
            )
            if created < self.as_of:
                out[cid] = created
        return out

    def within(self, ts: datetime | None, n: int) -> bool:
        return ts is not None and self.as_of - timedelta(days=n) <= ts < self.as_of

    # ---------------------------------------------------------------- value
    def value(self, cid: str, created: datetime) -> dict[str, Any]:
        w, out = self.w, {}
        orders = sorted(
            self.rows("orders", cid, "ordered_at"), key=lambda o: (o["ordered_at"], o["order_id"])
        )
        paid = {o["order_id"]: self.paid(o) for o in orders}
        for n in w.value_days:
            out[f"orders_{n}d"] = sum(self.within(o["ordered_at"], n) for o in orders)
            out[f"revenue_{n}d"] = sum(
                paid[o["order_id"]] for o in orders if self.within(o["ordered_at"], n)
            )
        out["orders_lifetime"] = len(orders)
        out["revenue_lifetime"] = sum(paid.values())
        out["tenure_days"] = days(self.as_of, created)
        r = w.recent_days
        recent = sum(paid[o["order_id"]] for o in orders if self.within(o["ordered_at"], r))
        older = sum(
            paid[o["order_id"]]
            for o in orders
            if self.as_of - timedelta(days=2 * r)
            <= o["ordered_at"]
            < self.as_of - timedelta(days=r)
        )
        out[f"revenue_trend_{r}d"] = recent - older
        out["recency_days"] = days(self.as_of, orders[-1]["ordered_at"]) if orders else NAN
        out["days_since_first_order"] = days(self.as_of, orders[0]["ordered_at"]) if orders else NAN
        out["avg_order_value"] = ratio(out["revenue_lifetime"], len(orders))
        gaps = [days(b["ordered_at"], a["ordered_at"]) for a, b in itertools.pairwise(orders)]
        out["interpurchase_mean_days"] = statistics.fmean(gaps) if gaps else NAN
        out["interpurchase_std_days"] = statistics.stdev(gaps) if len(gaps) >= 2 else NAN
        mean = out["interpurchase_mean_days"]
        out["recency_ratio"] = out["recency_days"] / mean if mean and not math.isnan(mean) else NAN
        out["discount_share"] = ratio(
            sum(o["discount_amount"] for o in orders), sum(o["gross_amount"] for o in orders)
        )
        out["max_basket_value"] = max(paid.values(), default=NAN)
        lines = self.lines(orders)
        out["refund_rate"] = (
            ratio(self.refunded(lines), sum(i["amount"] for i in lines)) if lines else NAN
        )
        return out

    def refunded(self, lines: list[dict[str, Any]]) -> float:
        """What was refunded on ``lines`` before as_of."""
        return sum(
            i["refund_amount"] for i in lines if i["refunded_at"] and i["refunded_at"] < self.as_of
        )

    def paid(self, order: dict[str, Any]) -> float:
        """The order's value at as_of: paid less refunded so far, never below zero."""
        return max(order["net_amount"] - self.refunded(self.lines([order])), 0.0)

    def lines(self, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = {o["order_id"] for o in orders}
        return [i for i in self.t.get("order_item", []) if i["order_id"] in ids]

    # ---------------------------------------------------------------- product
    def product(self, cid: str) -> dict[str, Any]:
        orders = self.rows("orders", cid, "ordered_at")
        category = {p["product_id"]: p["category"] for p in self.t.get("product", [])}
        spend: dict[str, float] = {}
        for i in self.lines(orders):
            cat = category.get(i["product_id"], "(unknown)")
            spend[cat] = spend.get(cat, 0.0) + i["amount"] - i["discount_amount"]
        total = sum(spend.values())
        out: dict[str, Any] = {"categories_distinct": len(spend)}
        out["top_category_share"] = ratio(max(spend.values()), total) if spend else NAN
        for c in MAJOR_CATEGORIES:
            out[f"affinity_{c}"] = ratio(spend.get(c, 0.0), total) if spend else NAN
        when = {o["order_id"]: o["ordered_at"] for o in orders}
        for c in MAJOR_CATEGORIES:
            bought = [
                when[i["order_id"]]
                for i in self.lines(orders)
                if category.get(i["product_id"], "(unknown)") == c
            ]
            out[f"days_since_{c}"] = days(self.as_of, max(bought)) if bought else NAN
        out["online_share"] = ratio(sum(o["channel"] == "online" for o in orders), len(orders))
        out["stores_distinct"] = len({o["store_id"] for o in orders if o["store_id"]})
        return out

    # ---------------------------------------------------------------- behaviour
    def behaviour(self, cid: str) -> dict[str, Any]:
        w, out = self.w, {}
        ev = self.rows("behavior_event", cid, "occurred_at")

        def count(kind: str, n: int) -> int:
            return sum(e["event_type"] == kind and self.within(e["occurred_at"], n) for e in ev)

        def since(kind: str | None) -> float:
            times = [e["occurred_at"] for e in ev if kind is None or e["event_type"] == kind]
            return days(self.as_of, max(times)) if times else NAN

        for kind in ("page_view", "product_view", "add_to_cart"):
            for n in w.event_days:
                out[f"events_{kind}_{n}d"] = count(kind, n)
        out[f"searches_{w.short_days}d"] = count("search", w.short_days)
        out[f"complaints_{w.recent_days}d"] = count("complaint", w.recent_days)
        out[f"feedback_{w.recent_days}d"] = count("feedback", w.recent_days)
        out["days_since_last_event"] = since(None)
        out["days_since_last_complaint"] = since("complaint")
        out["days_since_last_feedback"] = since("feedback")
        orders = self.rows("orders", cid, "ordered_at")
        last_order = max((secs(o["ordered_at"]) for o in orders), default=None)
        out["browse_events_since_last_order"] = (
            NAN
            if last_order is None
            else float(
                sum(
                    e["event_type"] in ("page_view", "product_view", "search", "add_to_cart")
                    and secs(e["occurred_at"]) > last_order
                    for e in ev
                )
            )
        )
        adds = [
            e
            for e in ev
            if e["event_type"] == "add_to_cart" and self.within(e["occurred_at"], w.short_days)
        ]
        abandoned = [
            a
            for a in adds
            if not any(
                secs(a["occurred_at"])
                <= secs(o["ordered_at"])
                < secs(a["occurred_at"]) + w.cart_hours * 3600
                for o in orders
            )
        ]
        out[f"cart_abandonment_rate_{w.short_days}d"] = ratio(len(abandoned), len(adds))
        return out

    # ---------------------------------------------------------------- loyalty
    def loyalty(self, cid: str) -> dict[str, Any]:
        w, out = self.w, {}
        r, s = w.recent_days, w.short_days
        pts = self.rows("points_ledger", cid, "posted_at")
        out["points_balance"] = sum(p["points"] for p in pts)
        out[f"points_earned_{r}d"] = sum(
            p["points"] for p in pts if p["kind"] == "earn" and self.within(p["posted_at"], r)
        )
        out[f"points_redeemed_{r}d"] = -sum(
            p["points"] for p in pts if p["kind"] == "redeem" and self.within(p["posted_at"], r)
        )
        horizon = self.as_of + timedelta(days=s)
        out[f"points_expiring_{s}d"] = sum(
            left
            for lot, left in self.unspent_lots(pts)
            if lot["expires_at"] and self.as_of < lot["expires_at"] <= horizon
        )
        changes = sorted(
            self.rows("tier_change", cid, "changed_at"),
            key=lambda t: (t["changed_at"], t["to_tier"]),
        )
        level = {t["tier_id"]: t["level"] for t in self.t.get("tier", [])}
        last = changes[-1] if changes else None
        out["tier_level"] = level.get(last["to_tier"], NAN) if last else NAN
        out["days_since_tier_change"] = days(self.as_of, last["changed_at"]) if last else NAN
        out["last_tier_change_direction"] = (
            {"up": 1, "down": -1}.get(last["direction"], 0) if last else 0
        )
        coupons = self.rows("coupon", cid, "issued_at")
        redeemed = [c for c in coupons if c["redeemed_at"] and c["redeemed_at"] < self.as_of]
        out[f"coupons_issued_{r}d"] = sum(self.within(c["issued_at"], r) for c in coupons)
        out[f"coupons_redeemed_{r}d"] = sum(self.within(c["redeemed_at"], r) for c in redeemed)
        out["coupon_redemption_rate"] = ratio(len(redeemed), len(coupons))
        sv = self.rows("stored_value_ledger", cid, "posted_at")
        out["stored_value_balance"] = sum(v["amount"] for v in sv)
        out[f"stored_value_spent_{r}d"] = sum(
            abs(v["amount"]) for v in sv if v["kind"] == "spend" and self.within(v["posted_at"], r)
        )
        return out

    @staticmethod
    def unspent_lots(pts: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
        """Replay the ledger in time order: spending takes the oldest lot first, debt waits.

        Lots posted together go first-to-expire first, never-expiring last.
        """

        def when(p: dict[str, Any]) -> tuple[Any, ...]:
            expiry = p["expires_at"]
            return (p["posted_at"], expiry is None, expiry or p["posted_at"], p["entry_id"])

        lots: list[list[Any]] = []  # [posting, points left], oldest first
        debt = 0
        for p in sorted(pts, key=when):
            if p["points"] > 0:
                repaid = min(debt, p["points"])
                debt -= repaid
                lots.append([p, p["points"] - repaid])
                continue
            spend = -p["points"]
            for lot in lots:
                taken = min(spend, lot[1])
                lot[1] -= taken
                spend -= taken
            debt += spend
        return [(lot, left) for lot, left in lots if left]

    # ---------------------------------------------------------------- campaigns
    def campaigns(self, cid: str) -> dict[str, Any]:
        r = self.w.recent_days
        got = [
            c
            for c in self.rows("campaign_contact", cid, "contacted_at")
            if c["contact_group"] == "treatment"
        ]
        responses = [
            c
            for c in got
            if c["responded"] and (c["responded_at"] or c["contacted_at"]) < self.as_of
        ]
        return {
            f"campaign_contacts_{r}d": sum(self.within(c["contacted_at"], r) for c in got),
            "campaign_response_rate": ratio(len(responses), len(got)),
            "days_since_last_contact": days(self.as_of, max(c["contacted_at"] for c in got))
            if got
            else NAN,
        }

    # ---------------------------------------------------------------- profile
    def profile(self, cid: str) -> dict[str, Any]:
        row = next(c for c in self.t["customer"] if c["customer_id"] == cid)
        gender = self.value_at(cid, "gender", row["gender"])
        text = gender.strip().lower() if gender else None
        tier = self.value_at(cid, "city_tier", row["city_tier"])
        channel = self.value_at(cid, "acquisition_channel", row["acquisition_channel"])
        out: dict[str, Any] = {
            "gender": "female"
            if text in ("f", "female", "woman", "女", "女性")
            else "male"
            if text in ("m", "male", "man", "男", "男性")
            else "unknown",
            "city_tier": float(tier)
            if tier not in (None, "") and str(tier).strip() in "123456"
            else NAN,
            "acquisition_channel": "unknown"
            if channel is None
            else channel
            if channel in ("store", "app", "mini_program", "web", "referral")
            else "other",
            "is_member": bool(row["is_member"])
            and (row["member_since"] is None or row["member_since"] < self.as_of),
            "age_band": self.age_band(row["birth_date"]),
        }
        for ch in CONSENT_FEATURE_CHANNELS:
            decisions = sorted(
                (c["updated_at"], c["status"])
                for c in self.rows("consent", cid, "updated_at")
                if c["channel"] == ch and c["purpose"] == "marketing"
            )
            latest = [s for t, s in decisions if t == decisions[-1][0]] if decisions else []
            out[f"consent_{ch}_marketing"] = (
                bool(latest)
                and "withdrawn" not in latest
                and "unknown" not in latest
                and "granted" in latest
            )
        out["has_owner"] = any(
            o["valid_to"] is None or o["valid_to"] >= self.as_of
            for o in self.rows("customer_owner", cid, "valid_from")
        )
        return out

    def value_at(self, cid: str, field: str, current: Any) -> Any:
        later = sorted(
            (c["changed_at"], c["change_id"], c["old_value"])
            for c in self.t.get("customer_change", [])
            if c["customer_id"] == cid and c["field"] == field and c["changed_at"] >= self.as_of
        )
        return later[0][2] if later else current

    def age_band(self, birth: datetime | None) -> str:
        if birth is None:
            return "unknown"
        years = days(self.as_of, birth) / 365.25
        for limit, band in ((25, "under_25"), (35, "25_34"), (45, "35_44"), (55, "45_54")):
            if years < limit:
                return band
        return "55_plus"


def reference_features(
    tables: dict[str, list[dict[str, Any]]],
    as_of: datetime,
    *,
    groups: tuple[str, ...] | None = None,
    windows: FeatureWindows | None = None,
) -> pd.DataFrame:
    """The reference frame: same index, columns and dtypes as ``customer_features``."""
    w = windows or FeatureWindows()
    ref = Reference(tables, as_of, w)
    records = {}
    for cid, created in ref.population().items():
        rec: dict[str, Any] = {}
        rec.update(ref.value(cid, created))
        rec.update(ref.product(cid))
        rec.update(ref.behaviour(cid))
        rec.update(ref.loyalty(cid))
        rec.update(ref.campaigns(cid))
        rec.update(ref.profile(cid))
        records[cid] = rec
    declared = feature_list(groups, windows=w)
    frame = pd.DataFrame.from_dict(records, orient="index", columns=[f.name for f in declared])
    frame = frame.sort_index()
    frame.index = pd.Index(frame.index, name="customer_id", dtype="str")
    return conform(frame, declared)
