"""Probability fields compared with a number outside 0–1 are refused, with the value meant."""

from __future__ import annotations

import pytest

from crm_ml.errors import RuleError
from crm_ml.rules import compile_rule


def test_the_probability_fields_are_the_scores_probabilities() -> None:
    from crm_ml.rules.vocabulary import PROBABILITY_FIELDS

    assert frozenset({"p_churn", "p_purchase"}) == PROBABILITY_FIELDS


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "recency_days > 60 and p_churn >= 60",
            "p_churn is a probability, compared here with 60: probabilities run 0–1; "
            "for 60 % write 0.6 (at column 34)",
        ),
        (
            "p_purchase < 35.5",
            "p_purchase is a probability, compared here with 35.5: probabilities run 0–1; "
            "for 35.5 % write 0.355 (at column 14)",
        ),
        (
            "60 <= p_churn",
            "p_churn is a probability, compared here with 60: probabilities run 0–1; "
            "for 60 % write 0.6 (at column 1)",
        ),
        (
            "0.5 <= p_churn <= 80",
            "p_churn is a probability, compared here with 80: probabilities run 0–1; "
            "for 80 % write 0.8 (at column 19)",
        ),
        (
            "p_churn in [0.6, 70]",
            "p_churn is a probability, compared here with 70: probabilities run 0–1; "
            "for 70 % write 0.7 (at column 18)",
        ),
        (
            "between(p_churn, 60, 100)",
            "p_churn is a probability, compared here with 60: probabilities run 0–1; "
            "for 60 % write 0.6 (at column 18)",
        ),
        (
            "p_purchase >= 150",
            "p_purchase is a probability, compared here with 150: probabilities run 0–1 "
            "(at column 15)",
        ),
        (
            "p_churn > -0.1",
            "p_churn is a probability, compared here with -0.1: probabilities run 0–1 "
            "(at column 11)",
        ),
    ],
)
def test_a_probability_compared_outside_0_to_1_is_refused(rule: str, message: str) -> None:
    with pytest.raises(RuleError) as err:
        compile_rule(rule)
    assert str(err.value) == f"Rule {rule!r} was rejected: {message}."


@pytest.mark.parametrize(
    "rule",
    [
        "p_churn >= 0.6",
        "p_churn >= 0 and p_purchase <= 1",
        "p_churn == 1",
        "between(p_churn, 0.6, 1.0)",
        "p_churn in [0.2, 0.4]",
        "p_churn * 100 >= 60",  # scaled on purpose: the comparison is not with the probability
        "recency_days > 60",
        "revenue_365d >= 2000",
    ],
)
def test_a_probability_within_0_to_1_and_other_numbers_are_accepted(rule: str) -> None:
    assert compile_rule(rule).text == rule
