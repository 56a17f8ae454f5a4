"""Benchmark: generate and load synthetic stores of 100,000 and 1,000,000 customers (DuckDB).

Prints wall time, CPU time, peak memory (resident set) and rows per table for
each size. Each size runs in its own process, so peak memory is that run's
alone.

    python bench/generate.py                   # 100k and 1M
    python bench/generate.py --sizes 100000    # one size
    python bench/generate.py --sizes 20000     # the notebook demo's default size (< 1 minute)
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = {1_000_000: 600.0}
TARGET_GB = 8.0


def run_one(n: int, folder: Path, seed: int) -> dict[str, object]:
    from crm_ml.demo import generate
    from crm_ml.store import Store, init_store

    path = folder / f"bench_{n}.duckdb"
    store = Store(f"duckdb:///{path}", create=True)
    init_store(store)
    started = time.perf_counter()
    summary = generate(
        store, n_customers=n, start="2023-01-01", end="2025-12-31", seed=seed, keep_truth=False
    )
    seconds = time.perf_counter() - started
    store.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_gb = usage.ru_maxrss / 1024**2
    truth = summary.truth_path
    return {
        "customers": n,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_seconds": round(summary.timings["load"], 1),
        "peak_gb": round(peak_gb, 2),
        "store_gb": round(path.stat().st_size / 1024**3, 2),
        "truth_mb": round(truth.stat().st_size / 1024**2, 1) if truth else None,
        "rows": summary.rows,
    }


def _report(result: dict[str, object]) -> None:
    n = int(result["customers"])  # type: ignore[call-overload]
    rows = result["rows"]
    assert isinstance(rows, dict)
    print(f"\n== {n:,} customers × 3 years (DuckDB) ==")
    load = result["load_seconds"]
    print(f"  wall time    {result['seconds']:>8} s   (of which import_frame: {load} s)")
    # On a shared machine wall time includes waiting for the CPU; CPU time does not.
    print(f"  CPU time     {result['cpu_seconds']:>8} s   (user + system, all threads)")
    print(f"  peak memory  {result['peak_gb']:>8} GB")
    print(f"  store file   {result['store_gb']:>8} GB, truth {result['truth_mb']} MB")
    print(f"  rows         {sum(rows.values()):>12,}")
    for table, count in rows.items():
        print(f"    {table:22s} {count:>12,}")
    target = TARGET_SECONDS.get(n)
    if target:
        ok = float(result["seconds"]) < target and float(result["peak_gb"]) < TARGET_GB  # type: ignore[arg-type]
        print(f"  target < {target:.0f} s and < {TARGET_GB:.0f} GB: {'met' if ok else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(run_one(args.one, args.folder, args.seed)))
        return
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="crm_bench_") as folder:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(n),
                    "--folder",
                    folder,
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            _report(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
