"""The rule language shared by tags and segments.

See :mod:`crm_ml.rules.compiler` for the grammar, :mod:`crm_ml.rules.vocabulary`
for the names a rule may use, and :mod:`crm_ml.rules.context` for how the store
supplies tags, consent and scores at a date.
"""

from crm_ml.rules.compiler import FUNCTIONS, Rule, RuleContext, compile_rule
from crm_ml.rules.context import (
    as_timestamp,
    build_context,
    consent_status_at,
    evaluate_rule,
    latest_score_date,
    latest_scores,
    tag_members_at,
)
from crm_ml.rules.vocabulary import (
    CATEGORIES,
    CATEGORY_LABELS,
    FEATURE_TYPES,
    SCORE_FIELDS,
    Vocabulary,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_LABELS",
    "FEATURE_TYPES",
    "FUNCTIONS",
    "SCORE_FIELDS",
    "Rule",
    "RuleContext",
    "Vocabulary",
    "as_timestamp",
    "build_context",
    "compile_rule",
    "consent_status_at",
    "evaluate_rule",
    "latest_score_date",
    "latest_scores",
    "tag_members_at",
]
