"""Promotion rules: whether a new model version may take the ``champion`` alias, and why.

Pure: the rules read a version's tags and a backtest, never MLflow itself, so
:mod:`crm_ml.models.tracking` stays the one module that imports mlflow and
the rules can be read and tested on their own. A new version is refused the
alias (kept ``challenger``, with the reason) when

- the champion learnt another label (:func:`other_label`) or predicts over
  another horizon (:func:`other_horizon`);
- it was tested on older data than the champion (:func:`learnt_from_older_data`);
- the champion, measured on another backtest, cannot be re-fitted with its own
  training design on the new frame (:class:`TrainingDesign`,
  :func:`design_not_reproducible`);
- its backtest AUC is below the champion's on the same backtest
  (:func:`decide_alias`) or below the best baseline's (:func:`below_baseline`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from crm_ml.models.baselines import BASELINE_NAMES
from crm_ml.models.evaluation import BacktestResult, BacktestSplit

CHAMPION, CHALLENGER = "champion", "challenger"
#: The version tag only a finished training run writes, once the version is vetted
#: (backtest AUC measured, alias decided); every version it finished has had it.
VETTED_TAG = "backtest_roc_auc"


class TaggedVersion(Protocol):
    """A registered version as the rules read it: its number and tags (MLflow's ModelVersion)."""

    @property
    def version(self) -> Any:
        """The version number."""

    @property
    def tags(self) -> Mapping[str, str]:
        """The version's tags."""


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Return the ROC-AUC's standard error from its test sample (Hanley and McNeil, 1982).

    Logged next to the backtest AUC so a champion decided by a few ten-thousandths
    can be judged: the promotion rule itself has no margin ("not worse"). NaN
    when a class is missing.
    """
    if positives <= 0 or negatives <= 0 or not math.isfinite(auc):
        return math.nan
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def model_auc_se(result: BacktestResult) -> float:
    """Return the standard error of the model's backtest AUC (NaN if the counts are missing)."""
    columns = ["roc_auc", "customers", "positives"]
    if "model" not in result.metrics.index or not set(columns) <= set(result.metrics.columns):
        return math.nan
    auc, customers, positives = (
        float(pd.to_numeric(result.metrics[c], errors="coerce").get("model", math.nan))
        for c in columns
    )
    if not (math.isfinite(customers) and math.isfinite(positives)):
        return math.nan
    return auc_standard_error(auc, int(positives), int(customers - positives))


def decide_alias(
    new_auc: float, champion_auc: float | None, *, champion_version: str | None, how: str
) -> tuple[str, str]:
    """Return ``(alias, reason)``: champion unless the new AUC is below the champion's.

    A missing champion makes the new version champion; a NaN AUC, or a
    champion that cannot be compared (``champion_auc`` None with a version),
    makes it challenger. ``how`` ends the reason: where the two AUCs were
    measured (e.g. "on the same backtest"), or why they cannot be compared.
    """
    if champion_version is None:
        return CHAMPION, "first version: no champion yet"
    if not math.isfinite(new_auc):
        return CHALLENGER, "backtest AUC is undefined (a single class in the test snapshot)"
    if champion_auc is None:
        return CHALLENGER, f"champion v{champion_version} not comparable: {how}; promote by hand"
    verdict = "is not below" if new_auc >= champion_auc else "is below"
    alias = CHAMPION if new_auc >= champion_auc else CHALLENGER
    return alias, (
        f"backtest AUC {new_auc:.4f} {verdict} champion v{champion_version}'s "
        f"{champion_auc:.4f} {how}"
    )


#: How much older a new version's test snapshot may be than the champion's and still replace
#: it. "As late as the data allows" was anchored at the last order's day by `crm-ml train` and
#: at the midnight after it by the training notebook: one day apart on the same data.
SAME_DATA_SLACK = pd.Timedelta(days=1)


def learnt_from_older_data(champion: TaggedVersion, split: BacktestSplit) -> str | None:
    """Return why the new version cannot be champion if it learnt from older data, else None.

    A backtest on an earlier snapshot measures a model of older behaviour, and
    re-training at an earlier ``as_of`` would otherwise replace a champion fitted
    on newer data whenever the champion's recipe ties on that old backtest. What
    matters is where the labels it learnt from end (``labels_until``: test
    snapshot plus horizon); the horizons are equal by now (:func:`other_horizon`),
    so the test snapshots are compared, allowing :data:`SAME_DATA_SLACK` for the
    two ways of anchoring the latest snapshot on the same data.
    """
    theirs = champion.tags.get("test_snapshot")
    ours = split.test_as_of.date().isoformat()
    if not theirs or split.test_as_of >= pd.Timestamp(theirs) - SAME_DATA_SLACK:
        return None
    return (
        f"tested on older data than champion v{champion.version} (test snapshot {ours} vs "
        f"{theirs}); promote by hand if intended"
    )


#: Version tags of the training design (see :class:`TrainingDesign`).
DESIGN_TAGS = ("training_snapshots", "training_offsets_days", "gap_days")


@dataclass(frozen=True)
class TrainingDesign:
    """Which snapshots a version's backtest learnt from, as days before its test snapshot.

    Its recorded AUC measures the recipe fitted on these snapshots: a champion
    re-fitted on fewer (a challenger's ``--snapshots 3``) would be handicapped,
    so it is re-fitted with its own design, anchored at the new test date.

    Attributes
    ----------
    tree_offsets_days : tuple of int
        Days before the test snapshot of each snapshot the trees were fitted on, oldest first.
    calibration_offset_days : int
        Days before the test snapshot of the calibration snapshot.
    gap_days : str
        The run's snapshot spacing as logged; empty where unknown.
    """

    tree_offsets_days: tuple[int, ...]
    calibration_offset_days: int
    gap_days: str = ""

    @classmethod
    def of_split(cls, split: BacktestSplit, *, gap_days: str = "") -> TrainingDesign:
        """Return the design of a backtest split."""
        test = split.test_as_of
        return cls(
            tuple((test - s).days for s in split.train_as_of),
            (test - split.calibration_as_of).days,
            gap_days,
        )

    @property
    def snapshots(self) -> int:
        """How many snapshots it learnt from: the trees' and the calibration's."""
        return len(self.tree_offsets_days) + 1

    def as_tags(self) -> dict[str, str]:
        """Return the version tags that record it (:data:`DESIGN_TAGS`)."""
        offsets = (*self.tree_offsets_days, self.calibration_offset_days)
        return {
            "training_snapshots": str(self.snapshots),
            "training_offsets_days": ",".join(map(str, offsets)),
            "gap_days": self.gap_days,
        }

    def split_at(self, test_as_of: pd.Timestamp, horizon_days: int) -> BacktestSplit:
        """Return the split of this design whose test snapshot is ``test_as_of``."""
        trees = tuple(test_as_of - pd.Timedelta(days=d) for d in self.tree_offsets_days)
        calibration = test_as_of - pd.Timedelta(days=self.calibration_offset_days)
        return BacktestSplit(trees, calibration, test_as_of, horizon_days)

    def describe(self) -> str:
        """Say it in words: ``4 snapshots 90 days apart``, else how far before the test."""
        offsets = [*self.tree_offsets_days, self.calibration_offset_days]
        steps = {a - b for a, b in itertools.pairwise(offsets)}
        if len(steps) == 1:
            return f"{self.snapshots} snapshots {steps.pop()} days apart"
        if len(offsets) == 1:
            return f"1 snapshot {offsets[0]} days before its test snapshot"
        return (
            f"{self.snapshots} snapshots {min(offsets)}-{max(offsets)} days before its test "
            "snapshot"
        )


def design_from_tags(tags: Mapping[str, str]) -> TrainingDesign | None:
    """Return the design recorded on a version, None if it has none (or it is unreadable)."""
    offsets = tags.get("training_offsets_days", "").split(",")
    if not all(o.strip().isdigit() for o in offsets):
        return None
    days = [int(o) for o in offsets]
    return TrainingDesign(tuple(days[:-1]), days[-1], tags.get("gap_days", ""))


def design_not_reproducible(
    design: TrainingDesign, version: str, split: BacktestSplit, command: str
) -> str | None:
    """Return why the champion cannot be re-fitted with its own design on this frame, else None.

    ``split`` is the new run's: its train and calibration snapshots are every
    snapshot of the frame whose labels closed by its test date.
    """
    usable = [*split.train_as_of, split.calibration_as_of]
    wanted = design.split_at(split.test_as_of, split.horizon_days)
    lacking = [s for s in (*wanted.train_as_of, wanted.calibration_as_of) if s not in usable]
    if not lacking:
        return None
    gap = f" --gap-days {design.gap_days}" if design.gap_days.isdigit() else ""
    return (
        f"champion v{version} was trained on {design.describe()}; this frame has "
        f"{len(usable)} before its test snapshot {split.test_as_of.date()} "
        f"({', '.join(str(s.date()) for s in usable)}) and lacks "
        f"{', '.join(str(s.date()) for s in lacking)}, so the champion cannot be re-fitted "
        f"as it was trained: not comparable. Train on the same design "
        f"(`{command} --snapshots {design.snapshots + 1}{gap}`) to compare, or promote by "
        "hand if intended"
    )


def refitted_how(design: TrainingDesign, champion: TaggedVersion) -> str:
    """Say that the champion's AUC was re-fitted, how, and what it recorded on its own backtest."""
    own = champion.tags.get(VETTED_TAG, "nan")
    when = champion.tags.get("test_snapshot", "")
    return (
        f"re-fitted to this backtest with its own recipe and training design "
        f"({design.describe()}), as its backtest had other test customers or labels; "
        f"v{champion.version}'s own recorded AUC is {float(own):.4f}"
        + (f" (test snapshot {when})" if when else "")
    )


def other_label(champion: TaggedVersion, label: str) -> str | None:
    """Return why a champion trained on another label cannot be compared, else None.

    Versions registered before labels were tagged carry none; they are compared
    as before (their backtest differs anyway, so the champion's recipe is re-fitted
    to this version's labels).
    """
    theirs = champion.tags.get("label")
    if not theirs or theirs == label:
        return None
    return (
        f"champion v{champion.version} learned the label {theirs!r}, this version "
        f"{label!r}: not comparable (a model of another label registers under its own "
        "name); promote by hand if intended"
    )


def other_horizon(champion: TaggedVersion, theirs: str | None, horizon: str) -> str | None:
    """Return why a champion predicting over another horizon cannot replace, else None.

    A 60-day churn probability is another quantity than a 90-day one: tags,
    segments and lists written for one would silently read the other.
    ``theirs`` is the champion's horizon in days (a version tag, or for older
    versions a run parameter), None when unknown.
    """
    if not theirs or not horizon or theirs == horizon:
        return None
    return (
        f"champion v{champion.version} predicts over {theirs} days, this version over "
        f"{horizon} days: not comparable; promote by hand to change the horizon that "
        "scores, tags and lists use"
    )


def below_baseline(metrics: pd.DataFrame) -> str | None:
    """Return why the model cannot be champion if a baseline beats it on its backtest, else None.

    ``metrics`` is :attr:`BacktestResult.metrics`: the ``model`` row and one row
    per baseline, all measured on the same test snapshot. A model that a
    recency rule or BG/NBD ranks better than is not worth its reasons.
    """
    aucs = pd.to_numeric(metrics["roc_auc"], errors="coerce")
    model_auc = float(aucs.get("model", math.nan))
    baselines = aucs.drop("model", errors="ignore").dropna()
    if baselines.empty or not math.isfinite(model_auc):
        return None
    best = str(baselines.idxmax())
    if model_auc >= float(baselines[best]):
        return None
    return (
        f"backtest AUC {model_auc:.4f} is below the {BASELINE_NAMES.get(best, best)} "
        f"baseline's {float(baselines[best]):.4f} on the same backtest; not made champion"
    )


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DESIGN_TAGS",
    "SAME_DATA_SLACK",
    "VETTED_TAG",
    "TaggedVersion",
    "TrainingDesign",
    "auc_standard_error",
    "below_baseline",
    "decide_alias",
    "design_from_tags",
    "design_not_reproducible",
    "learnt_from_older_data",
    "model_auc_se",
    "other_horizon",
    "other_label",
    "refitted_how",
]
