from __future__ import annotations

import math

import pandas as pd
import pytest
from analysis_rows import ts

from crm_ml.analysis import campaign_response, response_uplift
from crm_ml.errors import ConfigError, ValidationError

AS_OF = "2024-07-01"


def contacts(campaign_id, group, n, responders):
    return pd.DataFrame(
        {
            "campaign_id": campaign_id,
            "group": group,
            "responded": [True] * responders + [False] * (n - responders),
        }
    )


def test_uplift_and_normal_interval():
    frame = pd.concat(
        [
            contacts("k1", "treatment", 100, 20),
            contacts("k1", "control", 50, 5),
            contacts("k2", "treatment", 10, 3),
        ]
    )
    result = response_uplift(frame)

    k1 = result.loc["k1"]
    assert (k1["treatment_contacts"], k1["treatment_responders"]) == (100, 20)
    assert (k1["control_contacts"], k1["control_responders"]) == (50, 5)
    assert k1["treatment_rate"] == pytest.approx(0.2)
    assert k1["control_rate"] == pytest.approx(0.1)
    assert k1["uplift"] == pytest.approx(0.1)
    se = math.sqrt(0.2 * 0.8 / 100 + 0.1 * 0.9 / 50)
    assert k1["uplift_ci_low"] == pytest.approx(0.1 - 1.959964 * se, abs=1e-6)
    assert k1["uplift_ci_high"] == pytest.approx(0.1 + 1.959964 * se, abs=1e-6)
    assert k1["p_value"] == pytest.approx(0.08635, abs=1e-4)
    assert not k1["significant"]
    assert k1["incremental_responders"] == pytest.approx(10.0)
    # No control group: rates of the treatment only, no uplift.
    k2 = result.loc["k2"]
    assert k2["control_contacts"] == 0
    assert math.isnan(k2["uplift"]) and math.isnan(k2["uplift_ci_low"])
    assert not k2["significant"]


def test_a_clear_uplift_is_significant():
    frame = pd.concat([contacts("k", "treatment", 1000, 300), contacts("k", "control", 1000, 200)])
    row = response_uplift(frame, confidence=0.99).loc["k"]

    assert row["significant"]
    assert row["uplift_ci_low"] > 0


def test_no_variance_gives_a_certain_answer():
    frame = pd.concat([contacts("k", "treatment", 5, 5), contacts("k", "control", 5, 0)])
    row = response_uplift(frame).loc["k"]

    assert row["uplift"] == 1.0
    assert row["p_value"] == 0.0
    assert row["significant"]


def contact_row(customer_id, group, contacted, responded_at=None, responded=None):
    return {
        "campaign_id": "k1",
        "customer_id": customer_id,
        "contact_group": group,
        "contacted_at": ts(contacted),
        "responded": bool(responded_at) if responded is None else responded,
        "responded_at": ts(responded_at) if responded_at else None,
    }


def test_campaign_response_reads_only_before_as_of(store, insert):
    insert(
        "campaign",
        [
            {
                "campaign_id": "k1",
                "name": "618 回购",
                "channel": "sms",
                "start_at": ts("2024-06-01"),
                "end_at": ts("2024-06-30"),
                "control_share": 0.5,
            }
        ],
    )
    insert(
        "campaign_contact",
        [
            contact_row("t1", "treatment", "2024-06-01", "2024-06-05"),
            contact_row("t2", "treatment", "2024-06-01", "2024-07-01"),  # responds at as_of
            contact_row("t3", "treatment", "2024-06-01", responded=True),  # undated response
            contact_row("t4", "treatment", "2024-07-01"),  # contacted at as_of
            contact_row("c1", "control", "2024-06-01", "2024-06-10"),
            contact_row("c2", "control", "2024-06-01"),
        ],
    )
    result = campaign_response(store, AS_OF)

    row = result.loc["k1"]
    assert row["name"] == "618 回购"
    assert row["complete"]
    assert (row["treatment_contacts"], row["treatment_responders"]) == (3, 2)
    assert (row["control_contacts"], row["control_responders"]) == (2, 1)
    assert row["uplift"] == pytest.approx(2 / 3 - 1 / 2)
    assert campaign_response(store, AS_OF, campaign_ids=["k9"]).empty


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="confidence must be between 0 and 1"):
        response_uplift(contacts("k", "treatment", 1, 1), confidence=95)
    with pytest.raises(ValidationError, match="missing column"):
        response_uplift(pd.DataFrame({"campaign_id": ["k"]}))
