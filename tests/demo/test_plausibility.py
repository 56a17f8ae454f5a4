"""A generated store looks like a loyalty retailer: figures computed from the tables only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_ml.store.schema import SOURCE_TABLES

END_OF_DATA = pd.Timestamp("2026-01-01")


def test_every_source_table_is_filled(generated):
    for name in SOURCE_TABLES:
        assert len(generated.tables[name]) > 0, name
    assert generated.summary.rows["customer"] == len(generated.tables["customer"])


def test_repeat_purchase_rate_is_plausible(generated):
    per_customer = generated.tables["orders"].groupby("customer_id").size()
    repeat = (per_customer >= 2).mean()
    assert 0.35 <= repeat <= 0.75


def test_average_order_value_is_plausible_rmb(generated):
    orders = generated.tables["orders"]
    aov = orders["net_amount"].mean()
    assert 150 <= aov <= 600
    assert (orders["net_amount"] <= orders["gross_amount"]).all()
    discount_share = orders["discount_amount"].sum() / orders["gross_amount"].sum()
    assert 0.03 <= discount_share <= 0.25


def test_top_fifth_of_customers_hold_most_revenue(generated):
    revenue = generated.tables["orders"].groupby("customer_id")["net_amount"].sum()
    revenue = revenue.reindex(generated.tables["customer"]["customer_id"], fill_value=0.0)
    ranked = np.sort(revenue.to_numpy())[::-1]
    top = ranked[: len(ranked) // 5].sum() / ranked.sum()
    assert 0.60 <= top <= 0.85


def test_ninety_day_churn_base_rate_is_plausible(generated):
    orders = generated.tables["orders"]
    as_of = pd.Timestamp("2025-07-01")
    recent = orders[
        (orders["ordered_at"] < as_of) & (orders["ordered_at"] >= as_of - pd.Timedelta(days=365))
    ]
    later = orders[
        (orders["ordered_at"] >= as_of) & (orders["ordered_at"] < as_of + pd.Timedelta(days=90))
    ]
    active = recent["customer_id"].unique()
    churned = ~np.isin(active, later["customer_id"].unique())
    assert len(active) > 300
    assert 0.45 <= churned.mean() <= 0.85


def test_tier_shares_form_a_pyramid(generated):
    changes = generated.tables["tier_change"].sort_values(["customer_id", "changed_at"])
    current = changes.groupby("customer_id")["to_tier"].last()
    shares = current.value_counts(normalize=True).reindex(["T0", "T1", "T2", "T3"], fill_value=0.0)
    assert shares["T0"] > shares["T1"] > shares["T2"] >= shares["T3"]
    assert shares["T2"] > 0
    directions = set(changes["direction"])
    assert directions == {"initial", "up", "down"}


def test_points_liability_is_positive_and_no_balance_goes_negative(generated):
    ledger = generated.tables["points_ledger"].sort_values(
        ["customer_id", "posted_at", "points"], ascending=[True, True, False]
    )
    assert ledger["points"].sum() > 0
    running = ledger.groupby("customer_id")["points"].cumsum()
    assert running.min() >= 0
    assert set(ledger["kind"]) == {"earn", "redeem", "expire", "adjust"}


def test_points_expire_on_a_joining_anniversary_all_year_round(generated):
    # Counted from joining, not on one calendar day: "points expiring within 30 days"
    # must vary between members and snapshots, or no model can learn from it.
    ledger = generated.tables["points_ledger"]
    customers = generated.tables["customer"].set_index("customer_id")
    earned = ledger[ledger["kind"] == "earn"]
    expires = pd.to_datetime(earned["expires_at"])
    joined = pd.to_datetime(earned["customer_id"].map(customers["member_since"])).dt.normalize()
    assert (expires == expires.dt.normalize()).all()
    leap_day = (joined.dt.month == 2) & (joined.dt.day == 29)
    anniversary = expires.dt.strftime("%m-%d") == joined.dt.strftime("%m-%d")
    assert (anniversary | (leap_day & (expires.dt.strftime("%m-%d") == "03-01"))).all()
    kept = (expires - pd.to_datetime(earned["posted_at"])).dt.days
    assert kept.between(365, 731).all()
    assert expires.dt.month.nunique() == 12


def test_stored_value_balances_never_go_negative(generated):
    ledger = generated.tables["stored_value_ledger"].sort_values(
        ["customer_id", "posted_at", "amount"], ascending=[True, True, False]
    )
    assert ledger.groupby("customer_id")["amount"].cumsum().min() >= -1e-9


def test_campaign_uplift_is_measurable_against_control(generated):
    contacts = generated.tables["campaign_contact"]
    rates = contacts.groupby("contact_group")["responded"].agg(["mean", "size"])
    treat, ctrl = rates.loc["treatment"], rates.loc["control"]
    uplift = treat["mean"] - ctrl["mean"]
    se = np.sqrt(
        treat["mean"] * (1 - treat["mean"]) / treat["size"]
        + ctrl["mean"] * (1 - ctrl["mean"]) / ctrl["size"]
    )
    assert uplift - 1.96 * se > 0
    shares = contacts.merge(generated.tables["campaign"], on="campaign_id")
    held_out = (shares["contact_group"] == "control").groupby(shares["campaign_id"]).mean()
    expected = generated.tables["campaign"].set_index("campaign_id")["control_share"]
    assert np.allclose(held_out, expected.reindex(held_out.index), atol=0.12)


def test_some_coupons_are_redeemed_on_the_holders_orders(generated):
    coupons = generated.tables["coupon"]
    used = coupons[coupons["redeemed_at"].notna()]
    assert 0.03 <= len(used) / len(coupons) <= 0.4
    orders = generated.tables["orders"].set_index("order_id")
    assert (
        orders.loc[used["order_id"], "customer_id"].to_numpy() == used["customer_id"].to_numpy()
    ).all()
    assert (used["redeemed_at"] >= used["issued_at"]).all()


def test_behaviour_volumes_are_sane(generated):
    events = generated.tables["behavior_event"]
    per_customer = len(events) / len(generated.tables["customer"])
    assert 5 <= per_customer <= 60
    assert set(events["event_type"]) == {
        "page_view",
        "product_view",
        "search",
        "add_to_cart",
        "feedback",
        "complaint",
    }


def test_activity_happens_in_business_hours_and_inside_the_period(generated):
    stamps = pd.concat(
        [
            generated.tables["orders"]["ordered_at"],
            generated.tables["behavior_event"]["occurred_at"],
            generated.tables["points_ledger"]["posted_at"],
        ]
    )
    assert stamps.min() >= pd.Timestamp("2023-01-01") - pd.Timedelta(hours=8)
    assert stamps.max() < END_OF_DATA
    # Local 08:00–24:00 in Asia/Shanghai is 00:00–16:00 UTC.
    assert stamps.dt.hour.max() < 16


def test_duplicate_records_share_a_verified_phone_with_another_name(generated):
    ids = generated.tables["customer_identity"]
    phones = ids[(ids["kind"] == "phone") & ids["verified"]]
    shared = phones.groupby("value")["customer_id"].nunique()
    assert 0.01 <= (shared > 1).sum() / len(shared) <= 0.06
    pairs = phones[phones["value"].isin(shared[shared > 1].index)]
    names = (
        pairs.merge(generated.tables["customer"], on="customer_id")
        .groupby("value")["name"]
        .nunique()
    )
    assert (names == 2).mean() > 0.8
    # Phones typed with spaces, dashes or +86 were normalised on import.
    assert ids.loc[ids["kind"] == "phone", "value"].str.fullmatch(r"\+861[3-9]\d{9}").all()


def test_consent_has_withdrawn_and_unknown_answers(generated):
    consent = generated.tables["consent"]
    assert set(consent["status"]) == {"granted", "withdrawn", "unknown"}
    assert {"marketing", "service", "research"} == set(consent["purpose"])


def test_campaigns_contact_only_people_whose_consent_was_granted(generated):
    consent = generated.tables["consent"]
    marketing = consent[consent["purpose"] == "marketing"].sort_values("updated_at")
    contacts = generated.tables["campaign_contact"].merge(
        generated.tables["campaign"][["campaign_id", "channel"]]
    )
    joined = pd.merge_asof(
        contacts.sort_values("contacted_at"),
        marketing,
        left_on="contacted_at",
        right_on="updated_at",
        by=["customer_id", "channel"],
    )
    assert (joined["status"] == "granted").all()


def test_high_value_members_have_account_managers(generated):
    owners = generated.tables["customer_owner"]
    assert owners["owner_name"].str.endswith("经理").all()
    changes = generated.tables["tier_change"]
    gold = set(changes.loc[changes["to_tier"].isin(["T2", "T3"]), "customer_id"])
    assert set(owners["customer_id"]) == gold
