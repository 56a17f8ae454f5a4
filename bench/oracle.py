"""Benchmark: our churn and propensity AUC next to the oracle AUC from the generator's truth.

The synthetic retailer (``crm_ml.demo``) knows, for every person and month
start, the true probability of a purchase within 90 days (``p_purchase_90d``).
Ranking customers by it is the best any model can do on average (the oracle);
the figure here is how close ours comes: ``ratio = our AUC / oracle AUC``,
target at least 0.95 for churn and for propensity at 90 days.

Recipe (the same as ``crm-ml train``): ``ChurnModel`` and ``PropensityModel``
with their default settings, trees on earlier snapshots, calibration on the
latest snapshot whose label window closed before the test date, tested on a
month start whose 90-day window the data fully observes. Both AUCs are taken
on the same customers against the same observed labels:

* churn = no purchase in ``[as_of, as_of + 90 d)`` among customers who had
  bought before ``as_of``, so the oracle's P(churn) is ``1 - p_purchase_90d``;
* purchase = at least one purchase in that window, every customer.

How much of the oracle is reachable at all: the same trees are also fitted to
the truth's probabilities (no label noise) and scored on the same labels. That
estimates the best these features can do with this much data, so a shortfall
splits into what the features do not carry and what the recipe leaves behind.

What the recorded data supports at all: the Bayes posterior given only the
tables, under the generator's own law and parameters
(``crm_ml.demo.posterior``), is scored alone and added to our features as two
more columns. It knows what no real model could (the law), yet sees only what
ours sees; where it, too, stays short of the target, the data does not carry
the rest (``--no-posterior`` skips it).

Duplicate registrations are merged first (``plan_merges`` + ``merge_customers``),
so a person's history and label sit on one surviving id. The truth is keyed by
each person's first record; it is mapped through the merges to the survivor,
and customers on either side without a partner are counted and dropped.

    python bench/oracle.py                          # 20,000 customers (the demo default)
    python bench/oracle.py --customers 100000
    python bench/oracle.py --snapshots 15 --step-months 1   # more, overlapping training snapshots
    python bench/oracle.py --store /tmp/feat_bench/bench_features_100000.duckdb

A ``--store`` is copied (with its ``.truth.parquet``) before duplicates are
merged into the copy; the original is never written.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import resource
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

TARGET_RATIO = 0.95
HORIZON_DAYS = 90
#: Months between training snapshots (each label window closes before the next snapshot).
STEP_MONTHS = 3
TASKS = {"churn": "churn", "propensity": "purchase"}
#: Period and locale of the generated stores (``make_store``, ``bench/features.py``): the
#: posterior needs the generator's seasonal clock.
GENERATED = ("2023-01-01", "2025-12-31", "zh_CN")


@dataclass(frozen=True)
class OracleRow:
    """One task's comparison: our AUC and the oracle's on the same customers and labels."""

    task: str
    test_as_of: pd.Timestamp
    customers: int
    positives: int
    ours: float
    oracle: float
    baselines: dict[str, float]
    alive_share: float
    alive_ours: float
    alive_oracle: float
    dropped_no_truth: int
    truth_not_scored: int
    ceiling: float = float("nan")
    posterior_alone: float = float("nan")
    with_posterior: float = float("nan")

    @property
    def ratio(self) -> float:
        return self.ours / self.oracle


# --------------------------------------------------------------------------- the store


def make_store(folder: Path, n_customers: int, seed: int) -> Path:
    """Generate the demo retailer (2023-2025) with ``n_customers`` into ``folder``."""
    from crm_ml.demo import generate_demo_store
    from crm_ml.store import Store, init_store

    path = folder / f"oracle_{n_customers}.duckdb"
    store = Store(f"duckdb:///{path}", create=True)
    init_store(store)
    generate_demo_store(store, n_customers=n_customers, seed=seed)
    store.dispose()
    return path


def working_copy(path: Path, folder: Path) -> Path:
    """Copy a DuckDB store and its ``.truth.parquet`` into ``folder``; the original is untouched."""
    copy = folder / path.name
    shutil.copyfile(path, copy)
    shutil.copyfile(f"{path}.truth.parquet", f"{copy}.truth.parquet")
    return copy


def merge_duplicates(store: Any) -> int:
    """Merge the customers that share a verified phone or member card; return how many."""
    from crm_ml.features.labels import last_order_at
    from crm_ml.store.identity import merge_customers, plan_merges

    plan = plan_merges(store)
    if not plan.empty:
        at = last_order_at(store) or datetime(2026, 1, 1)
        merge_customers(store, plan, at=at, actor="bench/oracle.py")
    return len(plan)


def survivor_of(store: Any) -> dict[str, str]:
    """``merged_id -> final surviving_id`` for every merged customer (chains followed)."""
    from crm_ml.features.backend import fetch, open_tables
    from crm_ml.features.identity import resolve_id_map

    with open_tables(store) as (con, _dialect):
        id_map = resolve_id_map(con)
        empty = pd.DataFrame(columns=["merged_id", "surviving_id"])
        found = empty if id_map is None else fetch(id_map)
    return dict(zip(found["merged_id"].astype(str), found["surviving_id"].astype(str), strict=True))


# --------------------------------------------------------------------------- snapshots and frames


def snapshot_plan(
    last_order: datetime,
    *,
    earlier: int,
    horizon_days: int = HORIZON_DAYS,
    step_months: int = STEP_MONTHS,
) -> tuple[pd.Timestamp, list[pd.Timestamp]]:
    """Return ``(test, earlier snapshots)``: month starts whose label windows the data covers.

    The test date is the latest month start whose window closes by ``last_order``
    (the truth is kept at month starts). The earlier snapshots step back
    ``step_months`` at a time from the latest month start whose window closes by
    the test date; the latest of them calibrates, the others train the trees.
    """
    horizon = pd.Timedelta(days=horizon_days)
    test = (pd.Timestamp(last_order) - horizon).to_period("M").to_timestamp()
    latest = (test - horizon).to_period("M").to_timestamp()
    dates = [latest - pd.DateOffset(months=step_months * k) for k in range(earlier)]
    return test, sorted(pd.Timestamp(d) for d in dates)


def training_sets(store: Any, dates: Sequence[pd.Timestamp], horizon_days: int) -> dict[str, Any]:
    """Both tasks' training sets from one pass of features (the churn rows are the buyers).

    Returns
    -------
    dict
        ``{"purchase": TrainingSet, "churn": TrainingSet}``.
    """
    from crm_ml.features import training_frame
    from crm_ml.features.labels import churn_labels
    from crm_ml.features.training import TrainingSet

    gap = min(int((b - a).days) for a, b in itertools.pairwise(dates))
    purchase = training_frame(store, list(dates), horizon_days, gap, label="purchase")
    frames, rows = [], []
    for as_of, part in purchase.frame.groupby(level="as_of", sort=True):
        churned = churn_labels(store, as_of, horizon_days)["churned"].rename("label")
        features = part.droplevel("as_of").drop(columns="label")
        frame = features.join(churned, how="inner")
        frames.append(pd.concat({pd.Timestamp(as_of): frame}, names=["as_of"]))
        rows.append(
            {
                "as_of": pd.Timestamp(as_of),
                "customers": len(frame),
                "positives": int(frame["label"].sum()),
            }
        )
    prevalence = pd.DataFrame(rows).set_index("as_of")
    prevalence["prevalence"] = prevalence["positives"] / prevalence["customers"]
    churn = TrainingSet(pd.concat(frames), prevalence, "churn", horizon_days)
    return {"purchase": purchase, "churn": churn}


# --------------------------------------------------------------------------- truth and comparison


def truth_at(truth_path: Path, as_of: pd.Timestamp, survivors: Mapping[str, str]) -> pd.DataFrame:
    """Each surviving customer's truth at ``as_of``: ``p_purchase_90d`` and ``is_alive``.

    Truth rows are keyed by a person's first record; a record merged away is
    replaced by its survivor. A survivor claimed by two people (never expected:
    one person's records share a phone) is ambiguous and dropped. ``attrs``
    holds ``remapped`` and ``ambiguous`` (counts of people).
    """
    from crm_ml.demo import load_truth

    truth = load_truth(truth_path)
    truth = truth[pd.to_datetime(truth["as_of"]) == as_of]
    if truth.empty:
        raise ValueError(f"The truth has no snapshot on {as_of.date()} (it keeps month starts).")
    ids = truth["customer_id"].astype(str)
    survivor = ids.map(dict(survivors)).fillna(ids)
    frame = pd.DataFrame(
        {
            "p_purchase_90d": truth["p_purchase_90d"].to_numpy(float),
            "is_alive": truth["is_alive"].to_numpy(bool),
        },
        index=pd.Index(survivor.to_numpy(), name="customer_id"),
    )
    ambiguous = frame.index.duplicated(keep=False)
    frame = frame[~ambiguous]
    frame.attrs.update(remapped=int((survivor != ids).sum()), ambiguous=int(ambiguous.sum()))
    return frame


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < y.size else float("nan")


def _scored(result: Any, *frames: pd.DataFrame) -> pd.DataFrame:
    """The backtest's predictions, by customer id, for the customers every frame also has."""
    pred = result.predictions.set_index(result.predictions["customer_id"].astype(str))
    common = pred.index
    for frame in frames:
        common = common.intersection(frame.index)
    return pred.loc[common]


def _task_score(task: str, p_purchase_90d: np.ndarray) -> np.ndarray:
    """A purchase probability as the task's score: churn ranks by the chance of no purchase."""
    return 1.0 - p_purchase_90d if task == "churn" else p_purchase_90d


def compare(task: str, result: Any, truth: pd.DataFrame) -> OracleRow:
    """Our AUC and the oracle's on the test customers present in both the backtest and the truth."""
    pred = _scored(result, truth)
    common, known = pred.index, truth.loc[pred.index]
    y = pred["label"].to_numpy(bool)
    oracle_score = _task_score(task, known["p_purchase_90d"].to_numpy())
    alive = known["is_alive"].to_numpy(bool)
    models = [c for c in result.metrics.index if c != "model"]
    return OracleRow(
        task=task,
        test_as_of=result.split.test_as_of,
        customers=len(common),
        positives=int(y.sum()),
        ours=_auc(y, pred["model"].to_numpy()),
        oracle=_auc(y, oracle_score),
        baselines={m: _auc(y, pred[m].to_numpy()) for m in models},
        alive_share=float(alive.mean()),
        alive_ours=_auc(y[alive], pred["model"].to_numpy()[alive]),
        alive_oracle=_auc(y[alive], oracle_score[alive]),
        dropped_no_truth=len(result.predictions) - len(common),
        truth_not_scored=len(truth) - len(common),
    )


def truth_trained_auc(
    task: str,
    frame: pd.DataFrame,
    result: Any,
    truth_path: Path,
    survivors: Mapping[str, str],
    test_customers: pd.Index,
) -> float:
    """AUC of trees fitted to the truth's probabilities instead of the 0/1 labels.

    Same rows and features as our model (the earlier snapshots), but the target
    is each customer's true probability, free of label noise. What it reaches
    on the test labels estimates the best these features can do with this much
    data: a gap between it and the oracle is information the features do not
    carry, not a weakness of the recipe.
    """
    import lightgbm as lgb

    from crm_ml.models.evaluation import flatten_training_frame

    flat = flatten_training_frame(frame)
    flat["customer_id"] = flat["customer_id"].astype(str)
    features = result.model.feature_names_in_.tolist()
    X = result.model._prepare(flat[features])  # the model's own encoding of categories
    as_of = pd.to_datetime(flat["as_of"])
    target = pd.Series(np.nan, index=flat.index)
    for date in result.split.train_as_of:
        at = as_of == date
        p90 = truth_at(truth_path, pd.Timestamp(date), survivors)["p_purchase_90d"]
        target[at] = flat.loc[at, "customer_id"].map(p90).to_numpy()
    fit_rows = target.notna().to_numpy()
    y_fit = target[fit_rows].to_numpy() if task == "propensity" else 1 - target[fit_rows].to_numpy()
    params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31,
              "min_child_samples": 50, "num_threads": 2, "seed": 42, "verbosity": -1}  # fmt: skip
    trees = lgb.train(params, lgb.Dataset(X[fit_rows], y_fit), num_boost_round=600)
    test = (as_of == result.split.test_as_of).to_numpy()
    test_ids = flat.loc[test, "customer_id"]
    keep = test_ids.isin(test_customers).to_numpy()
    y = flat.loc[test, "label"].to_numpy(bool)[keep]
    return _auc(y, trees.predict(X[test][keep]))


def recorded_posteriors(
    store: Any, dates: Sequence[pd.Timestamp], survivors: Mapping[str, str]
) -> dict[pd.Timestamp, pd.DataFrame]:
    """The recorded-data posterior of every customer at each date (see the module docstring)."""
    from crm_ml.demo.posterior import histories, read_records, recorded_posterior
    from crm_ml.demo.timeline import Timeline

    timeline = Timeline.build(*GENERATED)
    records = read_records(store)
    return {
        date: recorded_posterior(histories(records, date, timeline, survivors), timeline)
        for date in dates
    }


def with_posterior(
    frame: pd.DataFrame, posteriors: Mapping[pd.Timestamp, pd.DataFrame]
) -> pd.DataFrame:
    """``frame`` with two more columns: the posterior's P(alive) and P(purchase in 90 days)."""
    parts = []
    for as_of, part in frame.groupby(level="as_of", sort=True):
        ids = part.index.get_level_values("customer_id").astype(str)
        known = posteriors[pd.Timestamp(as_of)].reindex(ids)
        parts.append(
            part.assign(
                recorded_p_alive=known["p_alive"].to_numpy(),
                recorded_p_purchase_90d=known["p_purchase_90d"].to_numpy(),
            )
        )
    return pd.concat(parts)


def posterior_auc(task: str, result: Any, truth: pd.DataFrame, posterior: pd.DataFrame) -> float:
    """AUC of the posterior alone on the customers and labels :func:`compare` scores ours on."""
    pred = _scored(result, truth, posterior)
    p90 = posterior.loc[pred.index, "p_purchase_90d"].to_numpy()
    return _auc(pred["label"].to_numpy(bool), _task_score(task, p90))


def run_oracle(
    store: Any,
    truth_path: Path,
    *,
    earlier: int = 5,
    step_months: int = STEP_MONTHS,
    horizon_days: int = HORIZON_DAYS,
    model_params: Mapping[str, Any] | None = None,
    posterior: bool = True,
) -> tuple[list[OracleRow], dict[str, Any]]:
    """Backtest both models on a generated store and compare them with the oracle.

    Returns
    -------
    (rows, info)
        One :class:`OracleRow` per task; seconds spent on features and each
        backtest, and the truth's ``remapped`` / ``ambiguous`` counts.
    """
    from crm_ml.features.labels import last_order_at
    from crm_ml.models import ChurnModel, PropensityModel, backtest

    last_order = last_order_at(store)
    if last_order is None:
        raise ValueError("The store has no orders: generate one with crm_ml.demo first.")
    test, dates = snapshot_plan(
        last_order, earlier=earlier, horizon_days=horizon_days, step_months=step_months
    )
    started = time.perf_counter()
    sets = training_sets(store, [*dates, test], horizon_days)
    survivors = survivor_of(store)
    truth = truth_at(truth_path, test, survivors)
    info = {
        "features_s": time.perf_counter() - started,
        "plan": f"{earlier} earlier snapshots {step_months} month(s) apart",
        **truth.attrs,
    }
    started = time.perf_counter()
    posteriors = recorded_posteriors(store, [*dates, test], survivors) if posterior else {}
    info["posterior_s"] = time.perf_counter() - started
    rows = []
    for task, model in (("churn", ChurnModel), ("propensity", PropensityModel)):
        started = time.perf_counter()
        frame = sets[TASKS[task]].frame

        def run(data: pd.DataFrame, model: Any = model) -> Any:
            return backtest(
                data,
                label="label",
                model=model(**dict(model_params or {})),
                horizon_days=horizon_days,
                test_as_of=test,
            )

        result = run(frame)
        info[f"{task}_s"] = time.perf_counter() - started
        row = compare(task, result, truth)
        ceiling = truth_trained_auc(task, frame, result, truth_path, survivors, truth.index)
        row = dataclasses.replace(row, ceiling=ceiling)
        if posteriors:
            helped = compare(task, run(with_posterior(frame, posteriors)), truth)
            alone = posterior_auc(task, result, truth, posteriors[test])
            row = dataclasses.replace(row, posterior_alone=alone, with_posterior=helped.ours)
        rows.append(row)
    return rows, info


# --------------------------------------------------------------------------- report


def report(rows: Sequence[OracleRow], info: Mapping[str, Any], *, size: str, merged: int) -> None:
    print(
        f"\n== AUC against the oracle: {size}, test {rows[0].test_as_of.date()}, "
        f"{HORIZON_DAYS}-day window, {info['plan']} =="
    )
    print(
        f"  {'task':<11}{'customers':>10}{'positives':>10}{'ours':>8}{'oracle':>8}"
        f"{'ratio':>8}  target >= {TARGET_RATIO}"
    )
    for r in rows:
        verdict = "met" if r.ratio >= TARGET_RATIO else "MISSED"
        print(
            f"  {r.task:<11}{r.customers:>10,}{r.positives:>10,}{r.ours:>8.4f}{r.oracle:>8.4f}"
            f"{r.ratio:>8.3f}  {verdict}"
        )
    print("  baselines, AUC on the same customers:")
    for r in rows:
        print(f"    {r.task:<11}" + ", ".join(f"{k} {v:.4f}" for k, v in r.baselines.items()))
    print(
        "  the best these features can do: the same trees fitted to the truth's probabilities "
        "(no label noise)"
    )
    for r in rows:
        print(
            f"    {r.task:<11}AUC {r.ceiling:.4f}, ratio to the oracle {r.ceiling / r.oracle:.3f}; "
            f"ours reaches {r.ours / r.ceiling:.1%} of it"
        )
    if not np.isnan(rows[0].posterior_alone):
        print(
            "  what the recorded data supports: the Bayes posterior given the tables only, "
            "under the generator's own law"
        )
        for r in rows:
            print(
                f"    {r.task:<11}alone AUC {r.posterior_alone:.4f} "
                f"(ratio {r.posterior_alone / r.oracle:.4f}); ours with it as two more features "
                f"AUC {r.with_posterior:.4f} (ratio {r.with_posterior / r.oracle:.4f})"
            )
    print("  where the gap is: AUC among the customers the truth says are still alive")
    for r in rows:
        print(
            f"    {r.task:<11}{r.alive_share:.0%} alive: ours {r.alive_ours:.4f}, "
            f"oracle {r.alive_oracle:.4f}, ratio {r.alive_ours / r.alive_oracle:.3f}"
        )
    print(
        f"  alignment: {merged:,} duplicate records merged before features; "
        f"{info['remapped']:,} truth ids mapped to another survivor, "
        f"{info['ambiguous']:,} ambiguous dropped"
    )
    for r in rows:
        print(
            f"    {r.task:<11}{r.dropped_no_truth:,} labelled customers without a truth row "
            f"dropped; {r.truth_not_scored:,} truth people not in this population"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--store", type=Path, help="a generated DuckDB store to reuse (copied)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--snapshots",
        type=int,
        default=5,
        help="snapshots before the test date (the latest calibrates)",
    )
    parser.add_argument(
        "--step-months", type=int, default=STEP_MONTHS, help="months between those snapshots"
    )
    parser.add_argument("--folder", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument(
        "--no-posterior",
        action="store_true",
        help="skip the recorded-data posterior (saves a second backtest per task)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from crm_ml.store import Store

    if args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crm_oracle_", dir=args.folder) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        if args.store:
            path, size = working_copy(args.store, folder), args.store.name
        else:
            path, size = (
                make_store(folder, args.customers, args.seed),
                f"{args.customers:,} customers",
            )
        prepared = time.perf_counter() - started
        store = Store(f"duckdb:///{path}")
        merged = merge_duplicates(store)
        rows, info = run_oracle(
            store,
            Path(f"{path}.truth.parquet"),
            earlier=args.snapshots,
            step_months=args.step_months,
            posterior=not args.no_posterior,
        )
        store.dispose()
    report(rows, info, size=size, merged=merged)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"  seconds: store {prepared:.0f} (generate or copy), "
        f"features {info['features_s']:.0f}, churn backtest {info['churn_s']:.0f}, "
        f"propensity backtest {info['propensity_s']:.0f}, "
        f"recorded-data posterior {info['posterior_s']:.0f} (plus a backtest per task); "
        f"peak memory {peak:.2f} GB"
    )


if __name__ == "__main__":
    main()
