"""Benchmark: import 1,000,000 orders (and their customers) from CSV into each engine.

Generates the CSV files once, then loads them into DuckDB, SQLite and
PostgreSQL, each in its own process so that the peak memory (resident set,
from ``resource.getrusage`` in the child) is that engine's alone. Prints wall
time, rows per second and peak memory side by side, for the first import and
for re-importing the same orders file (which must change nothing).

PostgreSQL: uses ``CRM_ML_TEST_POSTGRES_URL`` when set (a fresh database is
created and dropped); otherwise starts a throwaway server with
``.ci/postgres.sh`` and stops it at the end.

    python bench/load.py                      # 1,000,000 orders, three engines
    python bench/load.py --orders 100000 --engines duckdb sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("duckdb", "sqlite", "postgresql")
ORDERS_PER_CUSTOMER = 5


def generate(folder: Path, n_orders: int, seed: int = 7) -> dict[str, int]:
    """Write customers.csv and orders.csv the way a retailer's export looks."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_customers = max(1, n_orders // ORDERS_PER_CUSTOMER)
    ids = pd.Series([f"{i:08d}" for i in range(n_customers)])  # leading zeros, kept as text
    surnames = np.array(["张", "李", "王", "刘", "陈", "𠮷田", "赵", "黄"])
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "name": surnames[rng.integers(0, len(surnames), n_customers)],
            "city": rng.choice(["上海", "北京", "广州", "深圳", "杭州"], n_customers),
            "is_member": rng.choice(["Y", "N"], n_customers),
            "created_at": "2023-01-01 09:00:00",
        }
    )
    customers.to_csv(folder / "customers.csv", index=False)
    seconds = rng.integers(0, 540 * 86400, n_orders)
    ordered = pd.Timestamp("2023-06-01") + pd.to_timedelta(seconds, unit="s")
    gross = rng.integers(1_000, 200_000, n_orders) / 100
    discount = np.round(gross * rng.choice([0.0, 0.1], n_orders), 2)
    orders = pd.DataFrame(
        {
            "order_id": [f"O{i:09d}" for i in range(n_orders)],
            "customer_id": ids.to_numpy()[rng.integers(0, n_customers, n_orders)],
            "ordered_at": ordered.strftime("%Y-%m-%d %H:%M:%S"),
            "channel": rng.choice(["online", "offline"], n_orders),
            "gross_amount": gross,
            "discount_amount": discount,
            "net_amount": np.round(gross - discount, 2),
        }
    )
    orders.to_csv(folder / "orders.csv", index=False)
    return {"customer": n_customers, "orders": n_orders}


def child(url: str, folder: Path) -> None:
    """Load the files into the store at ``url``; print timings and peak memory as JSON."""
    from crm_ml.store import Store, init_store
    from crm_ml.store.loading import import_file

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = Store(url, create=True)
    init_store(store)
    timings = {}
    for step, table, name in (
        ("customer", "customer", "customers.csv"),
        ("orders", "orders", "orders.csv"),
        ("orders_again", "orders", "orders.csv"),
    ):
        started = time.perf_counter()
        result = import_file(store, table, folder / name, as_of="2026-01-01")
        timings[step] = {
            "seconds": time.perf_counter() - started,
            "read": result.rows_read,
            "inserted": result.inserted,
            "unchanged": result.unchanged,
        }
    store.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"timings": timings, "baseline_mb": baseline / 1024, "peak_mb": peak / 1024}))


def run_child(*arguments: str) -> dict:
    """Run this script with ``arguments`` in a fresh process; return its last line as JSON."""
    command = [sys.executable, __file__, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{arguments} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database: on the test server if one is named, else a throwaway server."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    admin_url = os.environ.get("CRM_ML_TEST_POSTGRES_URL")
    folder = None
    if not admin_url:
        folder = Path(tempfile.mkdtemp(prefix="crm_bench_pg_"))
        script = ROOT / ".ci" / "postgres.sh"
        admin_url = subprocess.run(
            [str(script), "start", str(folder)], capture_output=True, text=True, check=True
        ).stdout.strip()
    name = f"crm_bench_{os.getpid()}"
    admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if folder is not None:
            subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "stop", str(folder)], check=False)
            shutil.rmtree(folder, ignore_errors=True)


def measure(engine: str, data: Path, work: Path) -> dict:
    if engine == "duckdb":
        return run_child("--child", f"duckdb:///{work / 'bench.duckdb'}", "--data", str(data))
    if engine == "sqlite":
        return run_child("--child", f"sqlite:///{work / 'bench.db'}", "--data", str(data))
    with postgres_url() as url:
        return run_child("--child", url, "--data", str(data))


def report(results: dict[str, dict], counts: dict[str, int]) -> None:
    engines = list(results)
    width = 16
    print(f"\n{'':34}" + "".join(f"{e:>{width}}" for e in engines))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:34}" + "".join(f"{v:>{width}}" for v in values))

    for step, label in (
        ("customer", f"customers ({counts['customer']:,} rows)"),
        ("orders", f"orders ({counts['orders']:,} rows)"),
        ("orders_again", "orders again (no-op)"),
    ):
        times = [results[e]["timings"][step]["seconds"] for e in engines]
        row(f"{label}  seconds", [f"{t:.1f}" for t in times])
        rates = [
            results[e]["timings"][step]["read"] / t for e, t in zip(engines, times, strict=True)
        ]
        row("    rows/s", [f"{r:,.0f}" for r in rates])
    row("peak memory (RSS, MB)", [f"{results[e]['peak_mb']:,.0f}" for e in engines])
    row("  of which after imports (MB)", [f"{results[e]['baseline_mb']:,.0f}" for e in engines])
    again = [results[e]["timings"]["orders_again"] for e in engines]
    assert all(a["inserted"] == 0 and a["unchanged"] == counts["orders"] for a in again), again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data)
        return
    if args.generate:
        print(json.dumps(generate(args.generate, args.orders)))
        return
    with tempfile.TemporaryDirectory(prefix="crm_bench_load_") as tmp:
        data, work = Path(tmp) / "data", Path(tmp) / "work"
        data.mkdir()
        work.mkdir()
        started = time.perf_counter()
        # In a child too: Linux keeps a parent's peak RSS across fork and exec, so a parent
        # that built the data would inflate every engine's figure.
        counts = run_child("--generate", str(data), "--orders", str(args.orders))
        size = sum(p.stat().st_size for p in data.iterdir()) / 1024**2
        print(f"generated {counts['orders']:,} orders and {counts['customer']:,} customers "
              f"({size:.0f} MB of CSV) in {time.perf_counter() - started:.1f} s")  # fmt: skip
        results = {}
        for engine in args.engines:
            print(f"loading into {engine} …", flush=True)
            results[engine] = measure(engine, data, work)
        report(results, counts)


if __name__ == "__main__":
    main()
