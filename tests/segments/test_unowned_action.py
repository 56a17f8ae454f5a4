"""A customer without an account manager is not told to expect the manager's call.

The high-value, high-risk action is a one-to-one follow-up by the list's channel;
for an unowned customer it comes from a service agent instead, in the list's language.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from customer_helpers import D1, add_customers, features
from sqlalchemy import insert

from crm_ml.segments import Segment, export_list, save_segment
from crm_ml.segments.headers import read_list
from crm_ml.segments.lists import ACTIONS, CONTACT_MODES, suggest_action
from crm_ml.store import Store
from crm_ml.store.schema import Consent, CustomerOwner, Order, Score

BEFORE = datetime(2024, 3, 1)
IDS = ["c1", "c2", "c3", "c4", "c5"]
REVENUE = {"c1": 9000.0, "c2": 9000.0, "c3": 100.0, "c4": 100.0, "c5": 100.0}


@pytest.fixture
def risky(store: Store) -> Store:
    """Everyone at p_churn 0.9; c1 (owned by m1) and c2 (unowned) hold the value at risk."""
    add_customers(store, IDS)
    with store.begin() as conn:
        conn.execute(
            insert(Consent),
            [{"customer_id": c, "channel": "sms", "purpose": "marketing", "updated_at": BEFORE,
              "status": "granted", "source": "test"} for c in IDS],
        )  # fmt: skip
        conn.execute(
            insert(CustomerOwner),
            [{"customer_id": "c1", "valid_from": BEFORE, "owner_id": "m1", "owner_name": "周经理"}],
        )
        conn.execute(
            insert(Order),
            [{"order_id": f"o-{c}", "customer_id": c, "ordered_at": BEFORE, "channel": "online",
              "gross_amount": v, "discount_amount": 0.0, "net_amount": v}
             for c, v in REVENUE.items()],
        )  # fmt: skip
        conn.execute(
            insert(Score),
            [{"model_name": "crm-churn", "as_of": datetime(2024, 5, 31), "customer_id": c,
              "model_version": "1", "probability": 0.9, "band": "high", "scored_at": BEFORE}
             for c in IDS],
        )  # fmt: skip
    save_segment(store, Segment("risky", "p_churn >= 0.6"), actor="t")
    return store


@pytest.mark.parametrize("language", ["zh", "en"])
def test_an_unowned_customer_gets_a_service_agents_follow_up_not_a_managers(
    risky: Store, tmp_path: Path, language: str
) -> None:
    summary = export_list(
        risky, "risky", D1, channel="sms", purpose="marketing", out_dir=tmp_path,
        secret="unowned-action-secret-0123456789", actor="t", unmask=True,
        unmask_reason="test: full data checked",
        features=features(revenue_365d=[0.0] * 5), language=language,
    )  # fmt: skip

    rows = pd.concat([read_list(p) for p in summary.files["path"]], ignore_index=True)
    actions = rows.set_index("customer_id")["suggested_action"].to_dict()
    by_sms = {kind: text[language].format(via=CONTACT_MODES["sms"][language])
              for kind, text in ACTIONS.items()}  # fmt: skip
    assert actions == {
        "c1": by_sms["manager_follow_up"],
        "c2": by_sms["agent_follow_up"],
        "c3": by_sms["care"],
        "c4": by_sms["care"],
        "c5": by_sms["care"],
    }


def test_the_agents_follow_up_reads_like_the_managers() -> None:
    at_stake = {"p_churn": 0.9, "value_at_risk": 500.0}
    owned = pd.Series({**at_stake, "owner_id": "m1"})
    by_phone = {"channel": "phone", "purpose": "marketing"}
    assert (
        suggest_action(owned, 100.0, **by_phone) == "客户经理一对一电话回访，了解原因并提供专属权益"
    )
    assert suggest_action(pd.Series(at_stake), 100.0, **by_phone) == (
        "客服专员电话回访，了解原因并提供专属权益"
    )
    # No owner given is no owner: nobody is promised a manager's follow-up.
    assert suggest_action(pd.Series(at_stake), 100.0, "en", **by_phone) == (
        "A service agent follows up one-to-one by phone, asks why and offers an exclusive benefit"
    )
