"""Whom a model scores and where its scores go.

Where the rows go (``score.model_name``): tags, segments, lists and reports
read a model's scores by its registered name (``crm-churn``), so only the
**champion** writes there. Any other version is a *shadow run*, kept under the
reference it was scored with: ``crm-churn@challenger`` for an alias,
``crm-churn/5`` for a version (see :class:`ScoringTarget`). Each row still
carries the version that made it (``model_version``). A reference that resolves
to the champion's version (``crm-churn/1`` while v1 is champion) is production.
Category models (``crm-propensity-beauty``) follow the same rule under their own name.

Who is scored: a model scores only the customers its label was defined for
(:func:`scored_population`). ``churn_labels`` leaves out customers with no
order before ``as_of`` (who never bought cannot churn), so the churn model never
saw one and gives them no score; the propensity label covers everyone. No model
scores a customer erased on request (``crm-ml customers erase``): the id keeps
its orders and its row of features, but nothing more is computed about the
person (:mod:`crm_ml.store.erased`). Single machine and Spark scoring both use
these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from crm_ml.config import Settings
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.models.estimators import BoostedClassifier


@dataclass(frozen=True)
class ScoredPopulation:
    """The customers a model scores: those its label was defined for.

    A model learnt nothing about customers outside its label's population, so
    its probability for them is a guess that tags and lists would read as a
    fact. A customer is in the population when ``column >= minimum``.

    Attributes
    ----------
    column, minimum : str, int
        The feature and its least value, e.g. ``orders_lifetime`` and 1.
    outside : str
        Who is left out, after "customers": ``who never bought``.
    score : str
        The score they do not get: ``churn``.
    why : str
        Why, in a sentence a retention team understands.
    """

    column: str
    minimum: int
    outside: str
    score: str
    why: str

    @property
    def condition(self) -> str:
        """The test as SQL text, ``orders_lifetime >= 1``: Spark's ``DataFrame.filter`` takes it."""
        return f"{self.column} >= {self.minimum}"

    def mask(self, features: pd.DataFrame) -> pd.Series:
        """Return True for the customers of ``features`` in the population (missing is out).

        Raises
        ------
        ValidationError
            If ``features`` has no ``column``: who is in could not be told.
        """
        if self.column not in features.columns:
            raise ValidationError(
                f"A {self.score} model scores only customers with {self.condition}, and the "
                f"features have no {self.column} column. Build them with "
                "customer_features(store, as_of), which always has it."
            )
        values = pd.to_numeric(features[self.column], errors="coerce")
        return (values >= self.minimum).fillna(False).astype(bool)

    def note(self, left_out: int) -> str:
        """Say how many customers have no score and why: ``2,086 customers who never bought …``."""
        people = "customer" if left_out == 1 else "customers"
        have = "has" if left_out == 1 else "have"
        return f"{left_out:,} {people} {self.outside} {have} no {self.score} score: {self.why}"


#: Who the churn model scores: customers with an order before ``as_of``. These are
#: exactly the customers ``churn_labels`` keeps (``orders_lifetime`` counts the orders
#: before ``as_of``, a merged record's following the survivor, as the label's
#: buyers do), so the model scores only the kind of customer it learnt from.
CHURN_POPULATION = ScoredPopulation(
    column="orders_lifetime",
    minimum=1,
    outside="who never bought",
    score="churn",
    why="the churn model learnt only from customers who had bought (who never bought cannot "
    "churn), so tags and churn lists leave them out.",
)


def scored_population(model: BoostedClassifier) -> ScoredPopulation | None:
    """Return who ``model`` scores: :data:`CHURN_POPULATION` for churn, None (everyone) else.

    ``purchase_labels`` labels every customer, never-buyers included (a first
    purchase is a purchase), so a propensity model scores everyone.
    """
    return CHURN_POPULATION if model.target == "churn" else None


@dataclass(frozen=True)
class ScoringTarget:
    """A registry reference resolved for scoring, and where its scores are stored.

    Attributes
    ----------
    reference : str
        As given, without ``models:/``: ``crm-churn@challenger``, ``crm-churn/5``.
    name, version : str
        The registered name and the version the reference resolved to.
    champion : str or None
        The name's champion version when resolved; None if it has none.
    """

    reference: str
    name: str
    version: str
    champion: str | None

    @property
    def is_champion(self) -> bool:
        """True when this version is the champion, whatever reference named it."""
        return self.version == self.champion

    @property
    def key(self) -> str:
        """The ``score.model_name`` written: the name for the champion, else the reference.

        Tags, segments, lists and reports read the name, so a challenger's or an
        old version's scores (a shadow run) stay apart from production there.
        """
        return self.name if self.is_champion else self.reference

    @property
    def uri(self) -> str:
        """``crm-churn/5``: this version, even if the alias moves while scoring."""
        return f"{self.name}/{self.version}"


def scoring_target(reference: str, settings: Settings) -> ScoringTarget:
    """Resolve ``crm-churn@challenger``, ``crm-churn/5`` or a ``models:/`` URI for scoring.

    Raises
    ------
    NotFoundError
        For an unknown name, alias or version (as ``resolve_version`` does).
    """
    from crm_ml.models.promotion import CHAMPION
    from crm_ml.models.tracking import resolve_version

    name, version = resolve_version(reference, settings)
    try:
        champion: str | None = resolve_version(f"{name}@{CHAMPION}", settings)[1]
    except NotFoundError:  # no champion yet: every run of it is a shadow run
        champion = None
    return ScoringTarget(reference.removeprefix("models:/"), name, version, champion)
