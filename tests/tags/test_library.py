"""The built-in tag library and templates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from customer_helpers import D1

from crm_ml.errors import ValidationError
from crm_ml.features import catalog
from crm_ml.rules import RuleContext, Vocabulary, compile_rule
from crm_ml.store import Store
from crm_ml.tags import TAG_TEMPLATES, builtin_tags, install_library, tags_list_command


def base(n: int = 40, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    orders = rng.integers(0, 12, n)
    lifetime = orders + rng.integers(0, 3, n)
    revenue = np.where(orders > 0, rng.gamma(2.0, 500.0, n), 0.0)
    index = pd.Index([f"c{i}" for i in range(n)], name="customer_id")
    return pd.DataFrame(
        {
            "orders_365d": orders,
            "orders_lifetime": lifetime,
            "revenue_365d": revenue,
            "revenue_lifetime": revenue * 1.5,
            "avg_order_value": np.where(orders > 0, revenue / np.maximum(orders, 1), np.nan),
            "recency_days": np.where(lifetime > 0, rng.integers(1, 400, n), np.nan).astype(float),
        },
        index=index,
    )


def vocabulary() -> Vocabulary:
    """What a saved rule may name: the built-in fields and the features catalog."""
    return Vocabulary().with_catalog(catalog())


def members(name: str, frame: pd.DataFrame) -> set[str]:
    definition = next(d for d in builtin_tags() if d.name == name)
    rule = compile_rule(definition.rule or "", vocabulary())
    matches = rule.evaluate(RuleContext(frame))
    return set(matches.index[matches.to_numpy()])


def test_every_builtin_rule_compiles_and_names_are_unique() -> None:
    tags = builtin_tags()
    assert len({t.name for t in tags}) == len(tags)
    for tag in tags:
        compile_rule(tag.rule or "", vocabulary())
    assert {
        "high_value",
        "rfm_champions",
        "value_quadrant_e",
        "likes_maternity_baby",
        "churn_risk_high",
        "churn_risk_medium",
        "churn_risk_low",
        "likely_to_buy",
        "discount_sensitive",
        "points_expiring",
        "tier_downgrade_risk",
        "new_customer",
        "repeat_customer",
        "dormant",
    } <= {t.name for t in tags}


def test_churn_risk_high_is_for_customers_still_buying_not_long_gone() -> None:
    index = pd.Index(["active", "lapsing", "gone", "safe"], name="customer_id", dtype="str")
    frame = pd.DataFrame(
        {
            "p_churn": [0.9, 0.7, 0.99, 0.1],
            "recency_days": [20.0, 170.0, 700.0, 5.0],
            "orders_lifetime": [5, 3, 4, 9],
        },
        index=index,
    )
    # Gone 700 days: churned already, and dormant, not a retention call about to be lost.
    assert members("churn_risk_high", frame) == {"active", "lapsing"}
    assert members("dormant", frame) == {"gone"}


def test_high_value_is_the_top_fifth_of_12_month_buyers() -> None:
    frame = base()
    buyers = frame[frame["orders_365d"] > 0]
    top = set(buyers["revenue_365d"].nlargest(round(len(buyers) * 0.2)).index)
    assert members("high_value", frame) == top


def test_new_customers_first_bought_recently_whenever_they_registered() -> None:
    frame = pd.DataFrame(
        {
            "orders_lifetime": [1, 3, 2, 0, 1],
            "tenure_days": [1402.0, 30.0, 60.0, 10.0, 400.0],
            "days_since_first_order": [31.0, 25.0, 300.0, np.nan, 90.0],
        },
        index=pd.Index(["early_signup", "fresh", "imported_history", "no_order", "edge"]),
    )
    # Registered years ago, first bought a month ago: 新客. History from before the
    # registration (imported from a POS): not new. No order: not a customer yet.
    assert members("new_customer", frame) == {"early_signup", "fresh", "edge"}
    assert TAG_TEMPLATES["new_customer"].instantiate(days=30).rule == (
        "days_since_first_order <= 30"
    )


def test_value_quadrants_and_rfm_partition_the_base() -> None:
    frame = base()
    quadrants = [members(f"value_quadrant_{k}", frame) for k in "abcde"]
    assert sum(len(q) for q in quadrants) == len(frame)
    assert set().union(*quadrants) == set(frame.index)
    rfm = [
        members(f"rfm_{k}", frame)
        for k in (
            "champions",
            "loyal",
            "potential",
            "need_attention",
            "at_risk",
            "hibernating",
            "lost",
        )
    ]
    buyers = set(frame.index[frame["orders_lifetime"] > 0])
    assert sum(len(s) for s in rfm) == len(buyers)
    assert set().union(*rfm) == buyers


def test_templates_take_checked_parameters() -> None:
    tag = TAG_TEMPLATES["recent_category_buyer"].instantiate(category="beauty", days=14)
    assert (tag.name, tag.label) == ("recent_beauty_buyer_14d", "近14天购买过美妆")
    assert tag.rule == "days_since_beauty <= 14"
    with pytest.raises(ValidationError, match="Did you mean 'beauty'"):
        TAG_TEMPLATES["category_affinity"].instantiate(category="beuty")
    with pytest.raises(ValidationError, match="must be an int"):
        TAG_TEMPLATES["dormant"].instantiate(days="90; DROP TABLE customer")
    with pytest.raises(ValidationError, match="no parameter"):
        TAG_TEMPLATES["dormant"].instantiate(weeks=3)


def test_install_library_and_list(store: Store) -> None:
    stored = install_library(store)
    assert all(t.version == 1 for t in stored)
    again = install_library(store)
    assert all(t.version == 1 for t in again)
    listing = tags_list_command(store, on=D1)
    assert listing.loc["likes_maternity_baby", "label"] == "母婴偏好"
    assert listing["members"].sum() == 0
