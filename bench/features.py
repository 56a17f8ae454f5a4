"""Benchmark: the full customer feature table, against featuretools DFS and plain pandas.

For each size, a synthetic DuckDB store (``crm_ml.demo.generate``, 3 years)
is made once and kept; its source tables are exported to Parquet for the
peers. Every measurement runs in its own process, so the peak memory printed
(resident set, ``ru_maxrss``) belongs to that run alone.

    python bench/features.py                                  # 100k and 1M on DuckDB
    python bench/features.py --sizes 100000 --engines duckdb sqlite postgresql \
        --postgres-url 'postgresql+psycopg://postgres@/postgres?host=/tmp/crm_ml_pg'
    python bench/features.py --store duckdb:///data/crm.duckdb --as-of 2025-12-31
    python bench/features.py --sizes 100000 --peers pandas featuretools

featuretools needs pandas<3: the first run creates ``<dir>/featuretools-venv``
with ``pip`` and runs DFS there on the same Parquet files.

Only the standard library is imported at the top: the same file is the
worker in the featuretools venv (``--worker featuretools``). Imports happen
before each worker's timer starts; reading the data is inside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()
TARGETS = {"seconds_1m": 60.0, "gb_1m": 6.0, "vs_featuretools": 10.0, "vs_pandas": 2.0}
START, END, AS_OF = "2023-01-01", "2025-12-31", "2025-12-01"
TABLES = {
    "customer": [
        "customer_id",
        "status",
        "merged_into",
        "created_at",
        "gender",
        "birth_date",
        "city_tier",
        "acquisition_channel",
        "is_member",
        "member_since",
    ],
    "customer_merge": ["merged_id", "surviving_id"],
    "orders": [
        "order_id",
        "customer_id",
        "ordered_at",
        "channel",
        "store_id",
        "gross_amount",
        "discount_amount",
        "net_amount",
    ],
    "order_item": [
        "order_id",
        "product_id",
        "amount",
        "discount_amount",
        "refund_amount",
        "refunded_at",
    ],
    "product": ["product_id", "category"],
    "behavior_event": ["event_id", "customer_id", "event_type", "occurred_at"],
    "points_ledger": ["entry_id", "customer_id", "posted_at", "kind", "points", "expires_at"],
    "tier_change": ["customer_id", "changed_at", "to_tier", "direction"],
    "tier": ["tier_id", "level"],
    "coupon": ["coupon_id", "customer_id", "issued_at", "redeemed_at"],
    "stored_value_ledger": ["entry_id", "customer_id", "posted_at", "kind", "amount"],
    "campaign_contact": [
        "campaign_id",
        "customer_id",
        "contact_group",
        "contacted_at",
        "responded",
        "responded_at",
    ],
    "consent": ["customer_id", "channel", "purpose", "updated_at", "status"],
    "customer_owner": ["customer_id", "valid_from", "valid_to"],
}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# --------------------------------------------------------------------------- workers


def worker_crm_ml(url: str, as_of: str) -> dict[str, object]:
    # Imports stay outside every timer (the peers import pandas/featuretools first too).
    import ibis.backends.duckdb
    import ibis.backends.postgres
    import ibis.backends.sqlite  # noqa: F401

    from crm_ml.features import customer_features
    from crm_ml.store import Store

    store = Store(url)
    started = time.perf_counter()
    frame = customer_features(store, as_of)
    seconds = time.perf_counter() - started
    store.dispose()
    return {"seconds": seconds, "customers": len(frame), "features": frame.shape[1]}


def worker_pandas(parquet: Path, as_of: str) -> dict[str, object]:
    import pandas as pd

    started = time.perf_counter()
    tables = {name: pd.read_parquet(parquet / f"{name}.parquet") for name in TABLES}
    read = time.perf_counter() - started
    frame = pandas_features(tables, pd.Timestamp(as_of))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "read_seconds": read,
        "customers": len(frame),
        "features": frame.shape[1],
    }


def _logical_types(frame) -> dict[str, str]:
    """Woodwork types declared up front, so DFS is timed, not type inference."""
    kinds = {"M": "Datetime", "f": "Double", "i": "Integer", "b": "Boolean"}
    return {c: kinds.get(frame[c].dtype.kind, "Categorical") for c in frame.columns}


def worker_featuretools(parquet: Path, as_of: str) -> dict[str, object]:
    import featuretools as ft
    import pandas as pd

    started = time.perf_counter()
    t = {name: pd.read_parquet(parquet / f"{name}.parquet") for name in TABLES}
    customers = t["customer"][t["customer"]["status"] == "active"]
    customers = customers[customers["created_at"] < pd.Timestamp(as_of)]
    customers = customers[["customer_id", "created_at"]]
    es = ft.EntitySet("crm")
    es.add_dataframe(
        customers, "customer", index="customer_id", logical_types=_logical_types(customers)
    )
    children = {
        "orders": ("order_id", "ordered_at"),
        "behavior_event": ("event_id", "occurred_at"),
        "points_ledger": ("entry_id", "posted_at"),
        "coupon": ("coupon_id", "issued_at"),
        "stored_value_ledger": ("entry_id", "posted_at"),
        "campaign_contact": ("contact_id", "contacted_at"),
    }
    for name, (index, when) in children.items():
        frame = t[name][t[name]["customer_id"].isin(customers["customer_id"])]
        if index not in frame:
            frame = frame.reset_index(drop=True).rename_axis(index).reset_index()
        es.add_dataframe(
            frame, name, index=index, time_index=when, logical_types=_logical_types(frame)
        )
        es.add_relationship("customer", "customer_id", name, "customer_id")
    items = t["order_item"].merge(t["product"], on="product_id", how="left")
    items = items[items["order_id"].isin(es["orders"]["order_id"])]
    items = items.reset_index(drop=True).rename_axis("line_id").reset_index()
    es.add_dataframe(items, "order_item", index="line_id", logical_types=_logical_types(items))
    es.add_relationship("orders", "order_id", "order_item", "order_id")
    es.add_interesting_values(
        dataframe_name="behavior_event",
        values={"event_type": ["page_view", "product_view", "search", "add_to_cart", "complaint"]},
    )
    cutoff = pd.DataFrame({"customer_id": customers["customer_id"], "time": pd.Timestamp(as_of)})
    matrix, _ = ft.dfs(
        entityset=es,
        target_dataframe_name="customer",
        cutoff_time=cutoff,
        agg_primitives=["count", "sum", "mean", "max", "std", "num_unique", "time_since_last"],
        trans_primitives=[],
        where_primitives=["count"],
        max_depth=2,
        n_jobs=1,
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "customers": len(matrix), "features": matrix.shape[1]}


WORKERS: dict[str, Callable[..., dict[str, object]]] = {
    "crm_ml": worker_crm_ml,
    "pandas": worker_pandas,
    "featuretools": worker_featuretools,
}


# --------------------------------------------------------------------------- plain pandas


def pandas_features(t: dict, as_of):
    """The feature table written as straightforward pandas groupbys (most of the catalog)."""
    import pandas as pd

    day = pd.Timedelta(days=1)
    survivor = pd.concat(
        [
            t["customer_merge"].set_index("merged_id")["surviving_id"],
            t["customer"].dropna(subset=["merged_into"]).set_index("customer_id")["merged_into"],
        ]
    )
    survivor = survivor[~survivor.index.duplicated()]

    def rows(name: str, when: str):
        frame = t[name][t[name][when] < as_of].copy()
        if "customer_id" in frame and len(survivor):
            frame["customer_id"] = frame["customer_id"].map(survivor).fillna(frame["customer_id"])
        return frame

    def within(frame, when: str, days: int):
        return frame[frame[when] >= as_of - days * day]

    c = t["customer"]
    people = c[(c["status"] == "active") & (c["created_at"] < as_of)].set_index("customer_id")
    out = pd.DataFrame(index=people.index.sort_values())
    out["tenure_days"] = (as_of - people["created_at"]) / day

    o = rows("orders", "ordered_at")
    g = o.groupby("customer_id")
    out["recency_days"] = (as_of - g["ordered_at"].max()) / day
    for d in (30, 90, 180, 365):
        w = within(o, "ordered_at", d).groupby("customer_id")
        out[f"orders_{d}d"] = w.size()
        out[f"revenue_{d}d"] = w["net_amount"].sum()
    out["orders_lifetime"], out["revenue_lifetime"] = g.size(), g["net_amount"].sum()
    out["avg_order_value"] = out["revenue_lifetime"] / out["orders_lifetime"]
    o = o.sort_values(["customer_id", "ordered_at"])
    o["gap"] = o.groupby("customer_id")["ordered_at"].diff() / day
    gaps = o.groupby("customer_id")["gap"]
    out["interpurchase_mean_days"], out["interpurchase_std_days"] = gaps.mean(), gaps.std()
    out["recency_ratio"] = out["recency_days"] / out["interpurchase_mean_days"]
    prev = o[(o["ordered_at"] >= as_of - 180 * day) & (o["ordered_at"] < as_of - 90 * day)]
    out["revenue_trend_90d"] = out["revenue_90d"].fillna(0) - prev.groupby("customer_id")[
        "net_amount"
    ].sum().reindex(out.index).fillna(0)
    out["discount_share"] = g["discount_amount"].sum() / g["gross_amount"].sum()
    out["max_basket_value"] = g["net_amount"].max()
    out["online_share"] = (o["channel"] == "online").groupby(o["customer_id"]).mean()
    out["stores_distinct"] = g["store_id"].nunique()

    lines = t["order_item"].merge(o[["order_id", "customer_id"]], on="order_id")
    lines = lines.merge(t["product"], on="product_id", how="left")
    lines["spend"] = lines["amount"] - lines["discount_amount"]
    lines["refund"] = lines["refund_amount"].where(lines["refunded_at"] < as_of, 0.0)
    lg = lines.groupby("customer_id")
    out["refund_rate"] = lg["refund"].sum() / lg["amount"].sum()
    spend = lines.pivot_table(
        index="customer_id", columns="category", values="spend", aggfunc="sum"
    )
    total = spend.sum(axis=1)
    out["categories_distinct"] = spend.notna().sum(axis=1)
    out["top_category_share"] = spend.max(axis=1) / total
    for cat in ("maternity_baby", "beauty", "food", "apparel", "electronics", "home"):
        if cat in spend:
            out[f"affinity_{cat}"] = spend[cat].fillna(0) / total

    e = rows("behavior_event", "occurred_at")
    for d in (30, 90):
        counts = pd.crosstab(within(e, "occurred_at", d)["customer_id"], e["event_type"])
        for kind in counts.columns:
            out[f"events_{kind}_{d}d"] = counts[kind]
    eg = e.groupby("customer_id")["occurred_at"]
    out["days_since_last_event"] = (as_of - eg.max()) / day
    complaints = e[e["event_type"] == "complaint"].groupby("customer_id")["occurred_at"]
    out["days_since_last_complaint"] = (as_of - complaints.max()) / day

    p = rows("points_ledger", "posted_at")
    out["points_balance"] = p.groupby("customer_id")["points"].sum()
    recent = within(p, "posted_at", 90)
    out["points_earned_90d"] = (
        recent[recent["kind"] == "earn"].groupby("customer_id")["points"].sum()
    )
    out["points_redeemed_90d"] = (
        -recent[recent["kind"] == "redeem"].groupby("customer_id")["points"].sum()
    )
    # Same window as the feature; without its FIFO netting of spent points (a timing baseline).
    soon = p[
        (p["kind"] == "earn") & (p["expires_at"] > as_of) & (p["expires_at"] <= as_of + 30 * day)
    ]
    out["points_expiring_30d"] = soon.groupby("customer_id")["points"].sum()

    tc = rows("tier_change", "changed_at").sort_values(["customer_id", "changed_at"])
    last = tc.groupby("customer_id").tail(1).set_index("customer_id")
    levels = t["tier"].set_index("tier_id")["level"]
    out["tier_level"] = last["to_tier"].map(levels)
    out["days_since_tier_change"] = (as_of - last["changed_at"]) / day
    out["last_tier_change_direction"] = last["direction"].map({"up": 1, "down": -1, "initial": 0})

    k = rows("coupon", "issued_at")
    redeemed = k["redeemed_at"] < as_of
    out["coupons_issued_90d"] = within(k, "issued_at", 90).groupby("customer_id").size()
    out["coupons_redeemed_90d"] = (
        k[redeemed & (k["redeemed_at"] >= as_of - 90 * day)].groupby("customer_id").size()
    )
    out["coupon_redemption_rate"] = redeemed.groupby(k["customer_id"]).mean()
    v = rows("stored_value_ledger", "posted_at")
    out["stored_value_balance"] = v.groupby("customer_id")["amount"].sum()
    spent = within(v, "posted_at", 90)
    out["stored_value_spent_90d"] = (
        spent[spent["kind"] == "spend"].groupby("customer_id")["amount"].sum().abs()
    )

    m = rows("campaign_contact", "contacted_at")
    m = m[m["contact_group"] == "treatment"]
    answered = m["responded"] & (m["responded_at"].fillna(m["contacted_at"]) < as_of)
    out["campaign_contacts_90d"] = within(m, "contacted_at", 90).groupby("customer_id").size()
    out["campaign_response_rate"] = answered.groupby(m["customer_id"]).mean()
    out["days_since_last_contact"] = (as_of - m.groupby("customer_id")["contacted_at"].max()) / day

    cs = rows("consent", "updated_at")
    cs = (
        cs[cs["purpose"] == "marketing"]
        .sort_values("updated_at")
        .groupby(["customer_id", "channel"])
        .tail(1)
    )
    for ch in ("sms", "email", "wechat"):
        out[f"consent_{ch}_marketing"] = (
            cs[cs["channel"] == ch].set_index("customer_id")["status"].eq("granted")
        )
    ow = rows("customer_owner", "valid_from")
    ow = ow[ow["valid_to"].isna() | (ow["valid_to"] >= as_of)]
    out["has_owner"] = out.index.isin(ow["customer_id"])
    out["is_member"] = people["is_member"] & (
        people["member_since"].isna() | (people["member_since"] < as_of)
    )
    out["city_tier"] = people["city_tier"]
    return out


# --------------------------------------------------------------------------- orchestration


def run_worker(kind: str, python: str, args: list[str]) -> dict[str, object]:
    """Run one measurement in a fresh process; return its JSON line (or the error)."""
    command = [python, str(HERE), "--worker", kind, *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {
            "error": done.stderr.strip().splitlines()[-1:] or ["failed"],
            "wall": time.perf_counter() - started,
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_store(folder: Path, n: int, seed: int) -> Path:
    """The DuckDB store of ``n`` customers, generated once and kept."""
    path = folder / f"bench_features_{n}.duckdb"
    if path.exists():
        return path
    from crm_ml.demo import generate
    from crm_ml.store import Store, init_store

    store = Store(f"duckdb:///{path}", create=True)
    init_store(store)
    started = time.perf_counter()
    generate(store, n_customers=n, start=START, end=END, seed=seed, keep_truth=False)
    store.dispose()
    print(f"  generated {n:,} customers in {time.perf_counter() - started:.0f} s -> {path}")
    return path


def export_parquet(duckdb_path: Path) -> Path:
    """The source tables of a DuckDB store as Parquet files (made once)."""
    import duckdb

    folder = duckdb_path.with_suffix(".parquet.d")
    if (folder / "customer_owner.parquet").exists():
        return folder
    folder.mkdir(exist_ok=True)
    con = duckdb.connect(str(duckdb_path), read_only=True)
    for name, columns in TABLES.items():
        sql = f"SELECT {', '.join(columns)} FROM {name}"
        con.execute(f"COPY ({sql}) TO '{folder / name}.parquet' (FORMAT parquet)")
    con.close()
    return folder


def copy_store(duckdb_path: Path, url: str) -> str:
    """Copy every source table of the DuckDB store into an empty store at ``url``."""
    import duckdb
    from sqlalchemy import Boolean, DateTime, Double, Integer

    from crm_ml.store import Store, init_store
    from crm_ml.store.bulk import insert_frame
    from crm_ml.store.schema import SOURCE_TABLES, Base

    kind = {Boolean: "bool", DateTime: "timestamp", Double: "float", Integer: "int"}
    store = Store(url, create=True)
    init_store(store)
    source = duckdb.connect(str(duckdb_path), read_only=True)
    with store.begin() as conn:
        for name in SOURCE_TABLES:
            table = Base.metadata.tables[name]
            kinds = {
                c.name: next((k for t, k in kind.items() if isinstance(c.type, t)), "text")
                for c in table.columns
            }
            frame = source.execute(f"SELECT * FROM {name}").df()
            insert_frame(conn, name, frame, kinds)
    source.close()
    store.dispose()
    return url


def featuretools_python(folder: Path) -> str:
    """Python of a venv holding featuretools and pandas<3 (created on first use)."""
    venv = folder / "featuretools-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "featuretools", "pandas<3", "pyarrow"],
            check=True,
        )
    return str(python)


def _print_row(label: str, result: dict[str, object]) -> None:
    if "error" in result:
        print(f"  {label:<26} failed: {result['error']}")
        return
    seconds = float(result["seconds"])  # type: ignore[arg-type]
    n = int(result["customers"])  # type: ignore[call-overload]
    extra = f" (read {result['read_seconds']:.1f} s)" if "read_seconds" in result else ""
    print(
        f"  {label:<26} {seconds:>8.1f} s {n / seconds:>12,.0f} customers/s "
        f"{result['peak_gb']:>6.2f} GB peak  {result['features']} features{extra}"
    )


def bench_size(n: int, args: argparse.Namespace) -> dict[str, dict[str, object]]:
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = make_store(folder, n, args.seed)
    results: dict[str, dict[str, object]] = {}
    engines = args.engines if n <= 100_000 else ["duckdb"]
    for engine in engines:
        if engine == "duckdb":
            url = f"duckdb:///{path}"
        elif engine == "sqlite":
            target = path.with_suffix(".sqlite")
            url = f"sqlite:///{target}"
            if not target.exists():
                copy_store(path, url)
        else:
            if not args.postgres_url:
                continue
            url = args.postgres_url
            if args.load_postgres:
                copy_store(path, url)
        results[f"crm_ml {engine}"] = run_worker("crm_ml", sys.executable, [url, args.as_of])
    parquet = export_parquet(path)
    if "pandas" in args.peers:
        results["pandas groupby"] = run_worker("pandas", sys.executable, [str(parquet), args.as_of])
    if "featuretools" in args.peers and n <= args.featuretools_max:
        python = featuretools_python(folder)
        results["featuretools DFS"] = run_worker("featuretools", python, [str(parquet), args.as_of])
    return results


def report(n: int, results: dict[str, dict[str, object]]) -> None:
    print(f"\n== {n:,} customers x 3 years, as_of {AS_OF} ==")
    for label, result in results.items():
        _print_row(label, result)
    ours = results.get("crm_ml duckdb", {})
    if "seconds" not in ours:
        return
    for peer, target in (("featuretools DFS", "vs_featuretools"), ("pandas groupby", "vs_pandas")):
        if "seconds" in results.get(peer, {}):
            ratio = float(results[peer]["seconds"]) / float(ours["seconds"])  # type: ignore[arg-type]
            print(f"  crm_ml DuckDB is {ratio:.1f}x faster than {peer} (target {TARGETS[target]}x)")
    if n >= 1_000_000:
        print(f"  target: <= {TARGETS['seconds_1m']} s and <= {TARGETS['gb_1m']} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--engines", nargs="+", default=["duckdb"], choices=["duckdb", "sqlite", "postgresql"]
    )
    parser.add_argument("--peers", nargs="*", default=["pandas", "featuretools"])
    parser.add_argument("--featuretools-max", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=None, help="an empty database for the copy")
    parser.add_argument("--load-postgres", action="store_true", help="copy the store into it")
    parser.add_argument("--store", help="measure crm_ml only, on this existing store URL")
    parser.add_argument("--as-of", default=AS_OF)
    parser.add_argument("--dir", default=str(Path.cwd() / "data" / "bench"))
    parser.add_argument("--seed", type=int, default=42)
    args, rest = parser.parse_known_args()
    if args.worker:
        result = WORKERS[args.worker](
            *(Path(rest[0]) if args.worker != "crm_ml" else rest[0], rest[1])
        )
        print(json.dumps({**result, "peak_gb": peak_gb()}))
        return
    if args.store:
        result = run_worker("crm_ml", sys.executable, [args.store, args.as_of])
        _print_row(f"crm_ml {args.store.split(':')[0]}", result)
        return
    for n in args.sizes:
        report(n, bench_size(n, args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
