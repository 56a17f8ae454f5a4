"""Benchmark: train both models on 1,000,000 customers x 4 snapshots and score them with reasons.

Targets on 2 cores: training at most 5 minutes, scoring with reasons at most 60 s.

Stages, each timed on its own and run in its own process (so the peak memory
printed, the resident set ``ru_maxrss``, belongs to that stage; it includes
reading the stage's input from the work folder, which is not timed):

1. training frame: ``training_frame(label="purchase")`` on 4 snapshots 90
   days apart (features and labels), plus ``churn_labels`` at the same
   snapshots (the churn rows are the customers who had bought before);
2. train churn, train propensity: the model for use (``crm-ml train``'s
   re-fit): trees on the 3 earlier snapshots, isotonic calibration on the latest;
3. features for scoring: ``customer_features`` on the day after the last order;
4. score with reasons: ``score_customers(..., attribution="path")`` for each
   model on every customer, written to a fresh DuckDB store;
5. the same with exact TreeSHAP (``attribution="shap"``, the default of
   ``crm-ml score``) on every customer (``--shap-sample N``: on N of them, after
   a 100-row run that pays the one-off costs, the time extrapolated from the
   sample's per-row rate); and how often its first reason names the same
   topic as the path run's.

With ``--recipe``, ``train_model(..., register=False)`` is timed too: the whole
training recipe (backtest against the recency, RFM and BG/NBD baselines, then
the re-fit).

The store is only read. Models, frames and the score stores live in a
temporary work folder (``--workdir`` keeps them, with ``results.json``).
On a shared machine wall time depends on what else runs: the load average
before and after is printed, and CPU time (all threads) beside wall time.

    python bench/models.py                      # the 1M store of bench/features.py
    python bench/models.py --store /tmp/feat_bench/bench_features_100000.duckdb
    python bench/models.py --customers 100000 --workdir /tmp/models_bench
    python bench/models.py --workdir /tmp/models_bench --reuse --recipe --shap-sample 0
    python bench/models.py --model-params '{"n_estimators": 150}'   # another model setting

Without ``--store`` the 1M DuckDB store of ``bench/features.py`` in
``/tmp/feat_bench`` is used when present, else one of ``--customers`` is generated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
DEFAULT_STORE = Path("/tmp/feat_bench/bench_features_1000000.duckdb")
TRAIN_TARGET_S, SCORE_TARGET_S = 300.0, 60.0
HORIZON_DAYS, GAP_DAYS, SNAPSHOTS = 90, 90, 4
SHAP_SAMPLE = -1  # every customer
KINDS = {"churn": "churned", "propensity": "purchased"}


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_gb": usage.ru_maxrss / 1024**2,
    }


# --------------------------------------------------------------------------- workers


def worker_frame(url: str, work: Path, snapshots: int) -> dict[str, Any]:
    """Training frame with both labels -> ``frame.parquet``."""
    import pandas as pd

    from crm_ml.features import training_frame
    from crm_ml.features.labels import churn_labels
    from crm_ml.store import Store

    store = Store(url)
    cpu0, started = _usage()["cpu_s"], time.perf_counter()
    data = training_frame(store, snapshots, HORIZON_DAYS, GAP_DAYS, label="purchase")
    parts = []
    for as_of, part in data.frame.groupby(level="as_of", sort=True):
        churned = churn_labels(store, as_of, HORIZON_DAYS)["churned"].astype("boolean")
        flat = part.droplevel("as_of").rename(columns={"label": "purchased"})
        parts.append(flat.join(churned, how="left").reset_index().assign(as_of=as_of))
    frame = pd.concat(parts, ignore_index=True)
    seconds, cpu = time.perf_counter() - started, _usage()["cpu_s"] - cpu0
    store.dispose()
    frame.to_parquet(work / "frame.parquet")
    counts = frame.groupby("as_of").agg(rows=("purchased", "size"), buyers=("churned", "count"))
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rows": len(frame),
        "churn_rows": int(frame["churned"].notna().sum()),
        "features": len(frame.columns) - 4,
        "snapshots": {str(k.date()): v for k, v in counts.to_dict("index").items()},
    }


def _rows_of(work: Path, kind: str) -> tuple[Any, list[str], str]:
    import pandas as pd

    from crm_ml.models.training import default_features

    label = KINDS[kind]
    frame = pd.read_parquet(work / "frame.parquet")
    rows = frame[frame[label].notna()].copy()
    rows[label] = rows[label].astype(bool)
    return rows, default_features(rows, label=label), label


def worker_train(work: Path, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Fit the model for use (trees on earlier snapshots, calibration on the latest)."""
    from crm_ml.models.training import MODEL_KINDS, refit_for_use

    rows, features, label = _rows_of(work, kind)
    cpu0, started = _usage()["cpu_s"], time.perf_counter()
    model, split = refit_for_use(MODEL_KINDS[kind](**params), rows, features, label)
    seconds, cpu = time.perf_counter() - started, _usage()["cpu_s"] - cpu0
    model.save(work / kind)
    trees = rows["as_of"].isin(list(split.train_as_of))
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rows": int(trees.sum()),
        "calibration_rows": int((~trees).sum()),
        "features": len(features),
        "trees": model.n_estimators,
    }


def worker_recipe(work: Path, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The whole ``train_model`` recipe without MLflow: backtest, baselines, re-fit."""
    from crm_ml.models import train_model

    rows, features, label = _rows_of(work, kind)
    cpu0, started = _usage()["cpu_s"], time.perf_counter()
    result = train_model(
        kind,  # type: ignore[arg-type]
        rows,
        None,
        horizon_days=HORIZON_DAYS,
        label=label,
        features=features,
        model_params=params,
        register=False,
    )
    seconds, cpu = time.perf_counter() - started, _usage()["cpu_s"] - cpu0
    auc = result.backtest.metrics["roc_auc"].round(4).to_dict()
    return {"seconds": seconds, "cpu_s": cpu, "rows": len(rows), "auc": auc}


def worker_features(url: str, work: Path) -> dict[str, Any]:
    """Features of every customer on the day after the last order -> ``features.parquet``."""
    import pandas as pd

    from crm_ml.features import customer_features
    from crm_ml.features.labels import last_order_at
    from crm_ml.store import Store

    store = Store(url)
    as_of = (pd.Timestamp(last_order_at(store)) + pd.Timedelta(days=1)).normalize()
    cpu0, started = _usage()["cpu_s"], time.perf_counter()
    features = customer_features(store, as_of)
    seconds, cpu = time.perf_counter() - started, _usage()["cpu_s"] - cpu0
    store.dispose()
    features.to_parquet(work / "features.parquet")
    (work / "as_of.txt").write_text(as_of.isoformat())
    return {"seconds": seconds, "cpu_s": cpu, "rows": len(features), "as_of": str(as_of.date())}


#: Rows of the small run that measures a sampled score's fixed cost (booster compile, store).
FIXED_COST_ROWS = 100


def _timed_score(work: Path, kind: str, attribution: str, model: Any, features: Any) -> dict:
    """Score ``features`` into a fresh store; its wall and CPU seconds and rows stored."""
    from crm_ml.models import score_customers
    from crm_ml.store import Store, init_store

    path = work / f"scores_{kind}_{attribution}_{len(features)}.duckdb"
    path.unlink(missing_ok=True)
    out = Store(f"duckdb:///{path}", create=True)
    init_store(out)
    as_of = (work / "as_of.txt").read_text()
    cpu0, started = _usage()["cpu_s"], time.perf_counter()
    bands = score_customers(out, features, as_of, model=model, attribution=attribution)
    seconds, cpu = time.perf_counter() - started, _usage()["cpu_s"] - cpu0
    with out.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM score").scalar()
    out.dispose()
    return {"path": path, "seconds": seconds, "cpu_s": cpu, "stored": int(stored or 0),
            "bands": bands["customers"].to_dict()}  # fmt: skip


def worker_score(work: Path, kind: str, attribution: str, sample: int) -> dict[str, Any]:
    """``score_customers`` with reasons into a fresh store; ``sample > 0``: a random subset.

    A sampled run scores :data:`FIXED_COST_ROWS` rows alone first, with the same
    model object, so the one-off costs fall there and the sample measures the
    per-row rate (see :func:`extrapolated_seconds`).
    """
    import pandas as pd

    from crm_ml.models.estimators import load_saved_model

    model = load_saved_model(work / kind)
    features = pd.read_parquet(work / "features.parquet")
    total = len(features)
    fixed = None
    if 0 < sample < total:
        features = features.sample(n=sample, random_state=0)
        if sample > 2 * FIXED_COST_ROWS:
            fixed = _timed_score(work, kind, attribution, model, features.iloc[:FIXED_COST_ROWS])
    run = _timed_score(work, kind, attribution, model, features)
    result = {key: run[key] for key in ("seconds", "cpu_s", "stored", "bands")}
    result |= {"rows": len(features), "of": total}
    if fixed is not None:
        result["fixed"] = {"rows": FIXED_COST_ROWS, "seconds": fixed["seconds"]}
    full_path_run = work / f"scores_{kind}_path_{total}.duckdb"
    if attribution == "shap" and full_path_run.exists():
        result["top_reason_agrees"] = top_reason_agreement(run["path"], full_path_run)
    return result


def extrapolated_seconds(r: dict[str, Any]) -> float:
    """A sampled score's time at full size: the small run's, plus the sample's per-row rate.

    The small run pays the one-off costs (compiling the booster for SHAP, which
    the model then keeps); the sample run after it pays only per-row work.
    Scaling one run linearly would multiply the one-off cost by the sampling factor.
    """
    if "fixed" not in r:
        return float(r["seconds"] * r["of"] / r["rows"])
    small = r["fixed"]
    return float(small["seconds"] + r["seconds"] / r["rows"] * (r["of"] - small["rows"]))


def top_reason_agreement(shap_scores: Path, path_scores: Path) -> float:
    """Share of the SHAP run's customers whose first reason is the same topic in the path run."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{shap_scores}' AS s (READ_ONLY)")
        con.execute(f"ATTACH '{path_scores}' AS p (READ_ONLY)")
        share = con.sql(
            "SELECT avg(CASE WHEN json_extract_string(s.reasons, '$[0].feature') "
            "= json_extract_string(p.reasons, '$[0].feature') THEN 1.0 ELSE 0.0 END) "
            "FROM s.score s JOIN p.score p USING (customer_id)"
        ).fetchone()
    finally:
        con.close()
    return float(share[0]) if share and share[0] is not None else float("nan")


# --------------------------------------------------------------------------- driver


def run_worker(args: list[str]) -> dict[str, Any]:
    """Run one stage in a fresh interpreter; return its figures plus its peak memory."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE), "--worker", *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"stage {args} failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    return result


def ensure_store(args: argparse.Namespace) -> Path:
    """The store to read: ``--store``, else the 1M bench store, else a generated one."""
    if args.store:
        return Path(args.store)
    if DEFAULT_STORE.exists() and args.customers == 1_000_000:
        return DEFAULT_STORE
    from crm_ml.demo import generate
    from crm_ml.store import Store, init_store

    path = Path(args.workdir or tempfile.gettempdir()) / f"bench_models_{args.customers}.duckdb"
    if not path.exists():
        store = Store(f"duckdb:///{path}", create=True)
        init_store(store)
        generate(store, n_customers=args.customers, start="2023-01-01", end="2025-12-31", seed=2024)
        store.dispose()
    return path


def _line(stage: str, r: dict[str, Any], note: str = "") -> str:
    return (
        f"  {stage:<46}{r['rows']:>11,}{r['seconds']:>9.1f}{r['cpu_s']:>9.1f}"
        f"{r['peak_gb']:>9.2f}  {note}"
    )


def report(store: Path, results: dict[str, dict[str, Any]], params: dict[str, Any]) -> None:
    """Print one row per stage that ran, then the verdicts against the targets."""
    load = results.get("load", {})
    print(f"\n== models: {store.name}, {SNAPSHOTS} snapshots {GAP_DAYS} days apart, 2 threads ==")
    print(f"  model settings: defaults{f' overridden by {params}' if params else ''}")
    print(f"  load average before / after: {load.get('before')} / {load.get('after')}")
    print(f"  {'stage':<46}{'rows':>11}{'wall s':>9}{'CPU s':>9}{'peak GB':>9}")
    if "frame" in results:
        r = results["frame"]
        print(_line("training frame (features x 4 + both labels)", r, f"{r['features']} features"))
    for kind in KINDS:
        if r := results.get(f"train_{kind}"):
            note = f"+ {r['calibration_rows']:,} calibration rows, {r['trees']} trees"
            print(_line(f"train {kind} (trees + calibration)", r, note))
    for kind in KINDS:
        if r := results.get(f"recipe_{kind}"):
            auc = ", ".join(f"{k} {v:.4f}" for k, v in r["auc"].items())
            print(_line(f"train_model {kind} (whole recipe)", r, f"backtest AUC {auc}"))
    if r := results.get("features"):
        print(_line("features for scoring", r, f"as of {r['as_of']}"))
    for kind in KINDS:
        if r := results.get(f"score_{kind}_path"):
            print(_line(f"score {kind} with reasons (path)", r, f"{r['stored']:,} rows stored"))
    for kind in KINDS:
        if r := results.get(f"score_{kind}_shap"):
            scale = r["of"] / r["rows"]
            note = f"{r['stored']:,} rows stored"
            if scale > 1:
                note = f"-> {extrapolated_seconds(r):.0f} s extrapolated to {r['of']:,}"
            if "top_reason_agrees" in r:
                note += f"; top reason as path's: {r['top_reason_agrees']:.0%}"
            print(_line(f"score {kind} with reasons (exact SHAP)", r, note))
    _verdicts(results)


def _verdict(seconds: float, target: float) -> str:
    return f"{seconds:.0f} s, {'met' if seconds <= target else 'MISSED'}"


def _verdicts(results: dict[str, dict[str, Any]]) -> None:
    if all(f"train_{k}" in results for k in KINDS):
        fits = sum(results[f"train_{k}"]["seconds"] for k in KINDS)
        line = f"  training (target <= {TRAIN_TARGET_S:.0f} s): "
        line += f"both fits {_verdict(fits, TRAIN_TARGET_S)}"
        if "frame" in results:
            with_frame = fits + results["frame"]["seconds"]
            line += f"; with the training frame {_verdict(with_frame, TRAIN_TARGET_S)}"
        print(line)
    if all(f"recipe_{k}" in results for k in KINDS):
        recipes = sum(results[f"recipe_{k}"]["seconds"] for k in KINDS)
        print(f"  whole train_model recipe, both models: {_verdict(recipes, TRAIN_TARGET_S)}")
    feats = results.get("features", {}).get("seconds")
    for kind, method in itertools.product(KINDS, ("path", "shap")):
        r = results.get(f"score_{kind}_{method}")
        if r is None or r["rows"] < r["of"]:
            continue
        line = f"  scoring {kind} with {method} reasons (target <= {SCORE_TARGET_S:.0f} s): "
        line += _verdict(r["seconds"], SCORE_TARGET_S)
        if feats is not None:
            line += f"; with its features {_verdict(r['seconds'] + feats, SCORE_TARGET_S)}"
        print(line)


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a DuckDB store file (read only)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workdir", help="keep models, frames, scores and results.json here")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse frame/features already in --workdir"
    )
    parser.add_argument("--recipe", action="store_true", help="also time train_model")
    parser.add_argument(
        "--shap-sample", type=int, default=SHAP_SAMPLE, help="SHAP on N customers; 0: skip SHAP"
    )
    parser.add_argument("--model-params", default="{}", help="JSON, e.g. '{\"n_estimators\": 150}'")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_dispatch(args.worker) | {"peak_gb": _usage()["peak_gb"]}))
        return
    logging.basicConfig(level=logging.WARNING)
    store = ensure_store(args)
    url = f"duckdb:///{store}?access_mode=read_only"
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        results = run_stages(url, work, args)
        (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    else:
        with tempfile.TemporaryDirectory(prefix="crm_models_") as tmp:
            results = run_stages(url, Path(tmp), args)
    report(store, results, json.loads(args.model_params))


def plan_stages(url: str, work: Path, args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(name, worker arguments)`` of every stage to run, in order."""
    w, params = str(work), args.model_params
    reuse = args.reuse
    stages: list[tuple[str, list[str]]] = []
    if not (reuse and (work / "frame.parquet").exists()):
        stages.append(("frame", ["frame", url, w, str(SNAPSHOTS)]))
    stages += [(f"train_{k}", ["train", w, k, params]) for k in KINDS]
    if args.recipe:
        stages += [(f"recipe_{k}", ["recipe", w, k, params]) for k in KINDS]
    if not (reuse and (work / "features.parquet").exists()):
        stages.append(("features", ["features", url, w]))
    stages += [(f"score_{k}_path", ["score", w, k, "path", "0"]) for k in KINDS]
    if args.shap_sample:
        sample = str(args.shap_sample)
        stages += [(f"score_{k}_shap", ["score", w, k, "shap", sample]) for k in KINDS]
    return stages


def run_stages(url: str, work: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Run the stages one after another, each in its own process."""
    results: dict[str, dict[str, Any]] = {"load": {"before": _load_average()}}
    for name, worker_args in plan_stages(url, work, args):
        results[name] = r = run_worker(worker_args)
        print(f"  [{name}] {r['seconds']:.1f} s, peak {r['peak_gb']:.2f} GB", flush=True)
    results["load"]["after"] = _load_average()
    return results


def _dispatch(argv: list[str]) -> dict[str, Any]:
    stage, rest = argv[0], argv[1:]
    if stage == "frame":
        return worker_frame(rest[0], Path(rest[1]), int(rest[2]))
    if stage == "train":
        return worker_train(Path(rest[0]), rest[1], json.loads(rest[2]))
    if stage == "recipe":
        return worker_recipe(Path(rest[0]), rest[1], json.loads(rest[2]))
    if stage == "features":
        return worker_features(rest[0], Path(rest[1]))
    if stage == "score":
        return worker_score(Path(rest[0]), rest[1], rest[2], int(rest[3]))
    raise SystemExit(f"unknown stage {stage!r}")


if __name__ == "__main__":
    main()
