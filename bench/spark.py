"""Benchmark: features and scoring on local Spark next to DuckDB, on the same store.

The store (``--store``, else ``<dir>/bench_features_<N>.duckdb``, generated
once with ``crm_ml.demo.generate`` as in ``bench/features.py``) is exported to
Parquet once; then each step runs in its own process, so its times and memory
are its own:

- ``duckdb features``: ``customer_features(store, as_of)`` on the DuckDB file;
- ``spark features (collected)``: the same call on ``spark_tables(...)``,
  each query's rows brought back to the driver;
- ``spark features (kept)``: ``spark_features(...)`` written to Parquet by Spark;
- ``train`` (set-up, not compared): a LightGBM churn model on a sample of the
  DuckDB features, registered as champion in a throwaway MLflow store;
- ``local scoring``: ``score_batches`` in pandas on the DuckDB features;
- ``spark scoring``: ``score_on_spark`` (``spark_udf`` + ``mapInPandas``
  reasons) on the features Spark kept.

Memory is sampled every 0.2 s while a step is timed: this process (the
driver), the JVM child, and Spark's Python workers; ``peak total`` is the
largest sum seen. Each step's result is then checked against DuckDB's (or the
local scores), outside the measurement.

    python bench/spark.py --customers 100000 --store /tmp/feat_bench/bench_features_100000.duckdb
    python bench/spark.py                         # 1,000,000 customers (generated if missing)
    python bench/spark.py --customers 100000 --steps duckdb-features spark-features
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
START, END, AS_OF = "2023-01-01", "2025-12-31", "2025-12-01"
HORIZON_DAYS = 30  # the label window must end before the data does (END)
STEPS = (
    "duckdb-features",
    "spark-features",
    "spark-features-kept",
    "train",
    "local-scoring",
    "spark-scoring",
)
GB = 1024**3


# --------------------------------------------------------------------------- memory


def _proc_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _proc_children(pid: int) -> list[tuple[int, str]]:
    """Descendants of ``pid`` as ``(pid, command name)``, from /proc (when psutil is missing)."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append((int(stat.parent.name), name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def memory_now() -> dict[str, int]:
    """RSS in bytes of this process, its JVM child(ren) and other descendants (Python workers)."""
    try:
        import psutil

        me = psutil.Process()
        kids = []
        for child in me.children(recursive=True):
            try:
                kids.append((child.name(), child.memory_info().rss))
            except psutil.Error:
                continue
        driver = me.memory_info().rss
    except ImportError:
        driver = _proc_rss(os.getpid())
        kids = [(name, _proc_rss(pid)) for pid, name in _proc_children(os.getpid())]
    jvm = sum(rss for name, rss in kids if name.startswith("java"))
    workers = sum(rss for name, rss in kids if not name.startswith("java"))
    return {"driver": driver, "jvm": jvm, "workers": workers, "total": driver + jvm + workers}


class PeakMemory(threading.Thread):
    """Samples :func:`memory_now` in the background; ``peaks`` holds each part's maximum."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks = {"driver": 0, "jvm": 0, "workers": 0, "total": 0}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            for key, value in memory_now().items():
                self.peaks[key] = max(self.peaks[key], value)
            self._stop_event.wait(self.interval)

    def stop(self) -> dict[str, float]:
        """Stop sampling; return the peaks in GB (the checks after a step are not measured)."""
        if self.is_alive():
            self._stop_event.set()
            self.join()
        return {f"peak_{k}_gb": v / GB for k, v in self.peaks.items()}


SAMPLER = PeakMemory()


# --------------------------------------------------------------------------- workers


def _settings(folder: Path) -> Any:
    from crm_ml.config import Settings

    root = folder / "spark_bench_project"
    return Settings(
        root=root,
        database_url="duckdb:///unused.duckdb",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        reports_dir=root / "reports",
    )


def _session(args: argparse.Namespace) -> tuple[Any, float]:
    from crm_ml.spark import spark_session

    started = time.perf_counter()
    session = spark_session(args.master, driver_memory=args.driver_memory)
    return session, time.perf_counter() - started


def worker_duckdb_features(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from crm_ml.features import customer_features
    from crm_ml.store import Store

    store = Store(args.url)
    started = time.perf_counter()
    frame = customer_features(store, args.as_of)
    seconds = time.perf_counter() - started
    SAMPLER.stop()
    store.dispose()
    frame.to_parquet(work / "features_duckdb.parquet")
    return {"seconds": seconds, "customers": len(frame), "features": frame.shape[1]}


def worker_spark_features(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import pandas as pd

    from crm_ml.features import customer_features
    from crm_ml.spark import spark_tables

    session, start = _session(args)
    started = time.perf_counter()
    frame = customer_features(spark_tables(session, work / "parquet"), args.as_of)
    seconds = time.perf_counter() - started
    SAMPLER.stop()
    expected = pd.read_parquet(work / "features_duckdb.parquet")
    same = _same_frames(frame, expected)
    session.stop()
    return {
        "seconds": seconds,
        "start_seconds": start,
        "customers": len(frame),
        "features": frame.shape[1],
        "equal_to_duckdb": same,
    }


def _same_frames(got: Any, expected: Any) -> bool:
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    except AssertionError as exc:
        print(str(exc)[:400], file=sys.stderr)
        return False
    return True


def worker_spark_features_kept(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import pandas as pd

    from crm_ml.spark import collect_features, spark_features, spark_tables

    session, start = _session(args)
    started = time.perf_counter()
    frame = spark_features(spark_tables(session, work / "parquet"), args.as_of)
    frame.write.mode("overwrite").parquet(str(work / "features_spark"))
    seconds = time.perf_counter() - started
    SAMPLER.stop()
    session.stop()
    got = collect_features(pd.read_parquet(work / "features_spark"))
    same = _same_frames(got, pd.read_parquet(work / "features_duckdb.parquet"))
    return {
        "seconds": seconds,
        "start_seconds": start,
        "customers": len(got),
        "features": got.shape[1],
        "equal_to_duckdb": same,
    }


def worker_train(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Set-up only: a churn model on a sample of the DuckDB features, registered as champion."""
    import pandas as pd

    from crm_ml.features import churn_labels
    from crm_ml.models.training import train_model
    from crm_ml.store import Store

    settings = _settings(work)
    shutil.rmtree(settings.root, ignore_errors=True)
    features = pd.read_parquet(work / "features_duckdb.parquet")
    store = Store(args.url)
    labels = churn_labels(store, args.as_of, HORIZON_DAYS)["churned"]
    store.dispose()
    frame = features.join(labels, how="inner").sample(n=min(60_000, len(labels)), random_state=1)
    # The backtest wants snapshots a horizon apart: three pseudo-snapshots of one table.
    dates = [pd.Timestamp(args.as_of) - pd.Timedelta(days=HORIZON_DAYS * k) for k in (2, 1, 0)]
    frame["as_of"] = [dates[i * 3 // len(frame)] for i in range(len(frame))]
    started = time.perf_counter()
    params = {"n_estimators": 100, "num_leaves": 31, "n_jobs": 2}
    result = train_model(
        "churn", frame.reset_index(), settings, horizon_days=HORIZON_DAYS, model_params=params
    )
    return {
        "seconds": time.perf_counter() - started,
        "customers": len(frame),
        "features": len(result.features),
        "version": result.registered.version if result.registered else None,
    }


def worker_local_scoring(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import pandas as pd

    from crm_ml.models.scoring import score_batches
    from crm_ml.models.scoring_targets import scored_population
    from crm_ml.models.tracking import load_model

    settings = _settings(work)
    model = load_model("crm-churn@champion", settings).model
    started = time.perf_counter()
    features = pd.read_parquet(work / "features_duckdb.parquet")
    population = scored_population(model)  # churn: buyers only, as score_on_spark keeps
    if population is not None:
        features = features[population.mask(features)]
    scores = pd.concat(list(score_batches(model, features, attribution=args.attribution)))
    scores.to_parquet(work / "scores_local.parquet")
    SAMPLER.stop()
    return {
        "seconds": time.perf_counter() - started,
        "customers": len(scores),
        "features": len(model.feature_names_in_),
    }


def worker_spark_scoring(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from crm_ml.spark import ReasonOptions, score_on_spark

    settings = _settings(work)
    session, start = _session(args)
    started = time.perf_counter()
    summary = score_on_spark(
        session,
        work / "features_spark",
        "crm-churn@champion",
        settings,
        out_path=work / "scores_spark",
        as_of=args.as_of,
        # score_batches' own defaults, so the two runs can be compared row by row.
        options=ReasonOptions(attribution=args.attribution, language="en"),
        tier_names={},
    )
    seconds = time.perf_counter() - started
    SAMPLER.stop()
    session.stop()
    got = pd.read_parquet(work / "scores_spark").set_index("customer_id").sort_index()
    local = pd.read_parquet(work / "scores_local.parquet").set_index("customer_id").sort_index()
    aligned = got.index.equals(local.index)
    # Locally the probability is the sum of the contributions (one walk of the trees);
    # the pyfunc on Spark predicts it directly: they differ in the last bits only.
    gap = float(np.abs(got["probability"] - local["probability"]).max()) if aligned else np.inf
    same = bool(aligned and gap <= 1e-9 and (got["reasons"] == local["reasons"]).all())
    return {
        "seconds": seconds,
        "start_seconds": start,
        "customers": int(summary["customers"].sum()),
        "features": None,
        "equal_to_local": f"{same} (probabilities within {gap:.1e})",
    }


WORKERS = {
    "duckdb-features": worker_duckdb_features,
    "spark-features": worker_spark_features,
    "spark-features-kept": worker_spark_features_kept,
    "train": worker_train,
    "local-scoring": worker_local_scoring,
    "spark-scoring": worker_spark_scoring,
}


def run_worker_here(args: argparse.Namespace) -> None:
    """Run one step in this process and print its JSON line."""
    work = Path(args.work)
    SAMPLER.start()
    result = WORKERS[args.worker](args, work)
    result.update(SAMPLER.stop())
    print(json.dumps(result))


# --------------------------------------------------------------------------- orchestration


def run_step(step: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE),
        "--worker",
        step,
        "--work",
        str(work),
        "--url",
        args.url,
        "--as-of",
        args.as_of,
        "--master",
        args.master,
        "--driver-memory",
        args.driver_memory,
        "--attribution",
        args.attribution,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        return {"error": " | ".join(tail) or "failed", "wall": time.perf_counter() - started}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def find_store(args: argparse.Namespace) -> str:
    """The store URL: ``--store`` (a URL or a DuckDB path), else the generated one in ``--dir``."""
    if args.store:
        return args.store if "://" in args.store else f"duckdb:///{Path(args.store).resolve()}"
    path = Path(args.dir) / f"bench_features_{args.customers}.duckdb"
    if not path.exists():
        from crm_ml.demo import generate
        from crm_ml.store import Store, init_store

        path.parent.mkdir(parents=True, exist_ok=True)
        store = Store(f"duckdb:///{path}", create=True)
        init_store(store)
        started = time.perf_counter()
        generate(store, n_customers=args.customers, start=START, end=END, seed=42, keep_truth=False)
        store.dispose()
        print(f"generated {args.customers:,} customers in {time.perf_counter() - started:.0f} s")
    return f"duckdb:///{path}"


def export(url: str, work: Path) -> float | None:
    """Export the store's tables to ``work/parquet`` once; return the seconds it took."""
    target = work / "parquet"
    if (target / "campaign_contact").exists():
        return None
    from crm_ml.spark import export_tables
    from crm_ml.store import Store

    store = Store(url)
    started = time.perf_counter()
    export_tables(store, target)
    store.dispose()
    return time.perf_counter() - started


def print_row(step: str, result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"  {step:<22} failed after {result['wall']:.0f} s: {result['error']}", flush=True)
        return
    n = result["customers"]
    start = f" + {result['start_seconds']:.1f} s start" if "start_seconds" in result else ""
    same = {k: v for k, v in result.items() if k.startswith("equal_to")}
    check = " ".join(f"{k}={v}" for k, v in same.items())
    print(
        f"  {step:<22} {result['seconds']:>7.1f} s{start:<16} {n / result['seconds']:>9,.0f}/s  "
        f"peak {result['peak_total_gb']:.2f} GB (driver {result['peak_driver_gb']:.2f}, "
        f"JVM {result['peak_jvm_gb']:.2f}, py workers {result['peak_workers_gb']:.2f})  {check}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--store", help="an existing store: URL or DuckDB file")
    parser.add_argument("--dir", default=str(Path.cwd() / "data" / "bench"))
    parser.add_argument("--as-of", default=AS_OF)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--attribution", default="path", choices=["shap", "path"])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--work")
    parser.add_argument("--url")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.worker:
        run_worker_here(args)
        return
    args.url = find_store(args)
    work = Path(args.dir) / f"spark_bench_{args.customers}"
    work.mkdir(parents=True, exist_ok=True)
    seconds = export(args.url, work)
    print(f"== {args.url}: as_of {args.as_of}, Spark {args.master}, work dir {work} ==", flush=True)
    if seconds is not None:
        print(f"  {'export parquet':<22} {seconds:>7.1f} s")
    for step in args.steps:
        print_row(step, run_step(step, args, work))


if __name__ == "__main__":
    main()
