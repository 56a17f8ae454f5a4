"""Fill a store with a synthetic loyalty retailer, through the regular importers.

:func:`generate` draws shared objects (products, stores, tiers, campaigns,
account managers), then simulates people in chunks (bounding memory at a
million customers) and loads every chunk's rows with
:func:`crm_ml.store.loading.import_frame` — the same validation and bulk paths
a real import uses. The ground truth goes to a Parquet file beside the store,
never into a table the features read.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from crm_ml.demo.campaigns import campaign_frame, campaign_plan
from crm_ml.demo.catalog import build_catalog
from crm_ml.demo.identities import custom_field_frame
from crm_ml.demo.loyalty import manager_pool
from crm_ml.demo.names import LOCALES, name_pools
from crm_ml.demo.simulate import Counters, World, chunk_frames, chunk_truth, simulate_chunk
from crm_ml.demo.timeline import Timeline
from crm_ml.errors import ConfigError, ValidationError
from crm_ml.store.admin import check_store
from crm_ml.store.bulk import has_rows
from crm_ml.store.connection import Store, store_file
from crm_ml.store.loading import import_frame

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 100_000
DEMO_CUSTOMERS = 20_000
DEMO_START, DEMO_END = "2023-01-01", "2025-12-31"


@dataclass
class SyntheticSummary:
    """What :func:`generate` made.

    Attributes
    ----------
    n_customers : int
        People simulated (one first record each).
    n_records : int
        ``customer`` rows, duplicates included.
    rows : dict of str to int
        Rows inserted per source table.
    truth_path : Path or None
        Where the ground truth was written.
    truth : pandas.DataFrame or None
        The ground truth (see :func:`crm_ml.demo.truth.load_truth`), unless not kept.
    seconds : float
        Wall-clock time of the whole run.
    seed, locale, start, end
        The arguments of the run.
    """

    n_customers: int
    n_records: int
    rows: dict[str, int]
    truth_path: Path | None
    truth: pd.DataFrame | None
    seconds: float
    seed: int
    locale: str
    start: pd.Timestamp
    end: pd.Timestamp
    campaigns: int = 0
    chunks: int = 1
    timings: dict[str, float] = field(default_factory=dict)


def default_truth_path(store: Store) -> Path:
    """``<store file>.truth.parquet`` for a DuckDB or SQLite file store.

    Raises
    ------
    ConfigError
        For PostgreSQL or an in-memory store, which have no file to sit beside.
    """
    path = store_file(store.url)
    if path is not None:
        return path.with_name(f"{path.name}.truth.parquet")
    raise ConfigError(
        f"The store {store!r} has no file to keep the ground truth beside; "
        "pass truth_path='somewhere/truth.parquet'."
    )


def _check_arguments(n_customers: int, start: pd.Timestamp, end: pd.Timestamp, locale: str) -> None:
    if n_customers < 1:
        raise ValidationError(f"n_customers={n_customers}: expected at least 1.")
    if (end - start).days < 120:
        raise ValidationError(
            f"start={start.date()} and end={end.date()} are {(end - start).days} days apart; "
            "expected end at least 120 days after start (campaigns and churn need time)."
        )
    if locale not in LOCALES:
        raise ConfigError(f"Unknown locale {locale!r}; expected one of {', '.join(LOCALES)}.")


def _check_empty(store: Store) -> None:
    with store.connect() as conn:
        check_store(conn)
        if has_rows(conn, "customer"):
            raise ValidationError(
                f"The store {store!r} already holds customers; generate into a new, empty store "
                "(e.g. crm-ml init on a new file) so that synthetic ids cannot collide."
            )


def _build_world(
    n_customers: int, start: object, end: object, locale: str, rng: np.random.Generator
) -> World:
    pools = name_pools(locale)
    timeline = Timeline.build(start, end, locale)
    catalog = build_catalog(pools, rng)
    plan = campaign_plan(timeline, chinese=pools.chinese)
    return World(timeline, pools, catalog, plan, manager_pool(pools, n_customers, rng))


class _Loader:
    """Imports frames through :func:`import_frame`, counting rows and time per table."""

    def __init__(self, store: Store, as_of: pd.Timestamp, reject_dir: Path) -> None:
        self.store, self.as_of, self.reject_dir = store, as_of, reject_dir
        self.rows: dict[str, int] = {}
        self.seconds = 0.0

    def load(self, table: str, frame: pd.DataFrame, chunk: int) -> None:
        if frame.empty:
            return
        started = time.perf_counter()
        result = import_frame(
            self.store,
            table,
            frame,
            source=f"demo:{table}:chunk{chunk}",
            timezone="UTC",
            as_of=self.as_of,
            reject_dir=self.reject_dir,
        )
        self.seconds += time.perf_counter() - started
        self.rows[table] = self.rows.get(table, 0) + result.inserted


def _load_world(loader: _Loader, world: World) -> None:
    catalog = world.catalog
    for table, frame in (
        ("custom_field", custom_field_frame(world.pools)),
        ("product", catalog.products),
        ("store_location", catalog.stores),
        ("tier", catalog.tiers),
        ("campaign", campaign_frame(world.plan)),
    ):
        loader.load(table, frame, 0)


def _chunk_sizes(n: int, chunk_size: int) -> list[int]:
    full, rest = divmod(n, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


class _TruthWriter:
    """Appends each chunk's truth to one Parquet file (one row group per chunk)."""

    def __init__(self, path: Path | None, keep: bool) -> None:
        self.path, self.keep = path, keep
        self.frames: list[pd.DataFrame] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.keep:
            self.frames.append(frame)
        if self.path is None or frame.empty:
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)

    def close(self) -> pd.DataFrame | None:
        if self._writer is not None:
            self._writer.close()
        if not self.keep:
            return None
        return pd.concat(self.frames, ignore_index=True) if self.frames else pd.DataFrame()


def generate(
    store: Store,
    *,
    n_customers: int,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    seed: int,
    locale: str = "zh_CN",
    progress: bool = False,
    truth_path: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    keep_truth: bool = True,
) -> SyntheticSummary:
    """Fill an initialised, empty store with a synthetic loyalty retailer.

    Every source table is filled through :func:`crm_ml.store.loading.import_frame`
    with ``timezone="UTC"`` (timestamps are generated as naive UTC; activity
    falls in local 08:00–24:00, Asia/Shanghai for ``zh_CN``, London for ``en``).
    The same seed and chunk size give identical tables and truth.

    Parameters
    ----------
    store : Store
        An initialised store holding no customers yet.
    n_customers : int
        People to simulate; about 3 % more ``customer`` rows exist, because some
        people register twice (duplicates sharing a verified phone).
    start, end : str or Timestamp
        First and last day of the data (inclusive); customers sign up in between.
    seed : int
        Seed of the one random generator everything is drawn from.
    locale : {"zh_CN", "en"}
        Names, cities, products, campaigns and festivals.
    progress : bool
        Show a progress bar over chunks.
    truth_path : str or Path, optional
        Where to write the ground truth; by default ``<store file>.truth.parquet``
        (required for PostgreSQL).
    chunk_size : int
        People simulated and loaded at a time; bounds memory. Part of the seed's
        meaning: another chunk size gives another (equally valid) store.
    keep_truth : bool
        Return the truth in the summary (it is written to ``truth_path`` anyway).

    Returns
    -------
    SyntheticSummary

    Raises
    ------
    ValidationError
        If the store already holds customers or the arguments are out of range.
    ConfigError
        For an unknown locale, or PostgreSQL without ``truth_path``.
    """
    started = time.perf_counter()
    first, last = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    _check_arguments(n_customers, first, last, locale)
    path = Path(truth_path) if truth_path is not None else default_truth_path(store)
    _check_empty(store)
    rng = np.random.default_rng(seed)
    world = _build_world(n_customers, first, last, locale, rng)
    loader = _Loader(store, last + pd.Timedelta(days=2), path.parent)
    _load_world(loader, world)
    sizes = _chunk_sizes(n_customers, chunk_size)
    counters, truth = Counters(), _TruthWriter(path, keep_truth)
    try:
        _run_chunks(world, sizes, rng.spawn(len(sizes)), counters, loader, truth, progress)
    finally:
        kept = truth.close()
    summary = SyntheticSummary(
        n_customers=n_customers,
        n_records=counters.values.get("customer", 0),
        rows=loader.rows,
        truth_path=path,
        truth=kept,
        seconds=time.perf_counter() - started,
        seed=seed,
        locale=locale,
        start=first,
        end=last,
        campaigns=len(world.plan),
        chunks=len(sizes),
        timings={"load": loader.seconds},
    )
    log.info(
        "Generated %s customers (%s records) in %.1f s",
        n_customers,
        summary.n_records,
        summary.seconds,
    )
    return summary


def _produce(
    world: World, size: int, counters: Counters, rng: np.random.Generator, truth: _TruthWriter
) -> dict[str, pd.DataFrame]:
    chunk = simulate_chunk(world, size, counters, rng)
    frames = chunk_frames(world, chunk, counters, rng)
    truth.write(chunk_truth(chunk, world))
    return frames


def _run_chunks(
    world: World,
    sizes: list[int],
    rngs: list[np.random.Generator],
    counters: Counters,
    loader: _Loader,
    truth: _TruthWriter,
    progress: bool,
) -> None:
    """Simulate chunk k+1 in a worker thread while chunk k loads (the database releases the GIL).

    Chunks are still simulated one after another, in order, so ids and draws do not
    depend on timing.
    """
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(_produce, world, sizes[0], counters, rngs[0], truth)
        for index in tqdm(range(len(sizes)), desc="customers", unit="chunk", disable=not progress):
            frames = pending.result()
            if index + 1 < len(sizes):
                pending = worker.submit(
                    _produce, world, sizes[index + 1], counters, rngs[index + 1], truth
                )
            for table, frame in frames.items():
                loader.load(table, frame, index)
            del frames
            log.info("Chunk %d: %d people loaded", index, sizes[index])


def generate_demo_store(
    store: Store,
    *,
    n_customers: int = DEMO_CUSTOMERS,
    start: str | pd.Timestamp = DEMO_START,
    end: str | pd.Timestamp = DEMO_END,
    seed: int = 42,
    locale: str = "zh_CN",
    progress: bool = False,
    truth_path: str | Path | None = None,
) -> SyntheticSummary:
    """Fill ``store`` with the demo retailer: 20,000 customers, 2023–2025 (see :func:`generate`)."""
    return generate(
        store,
        n_customers=n_customers,
        start=start,
        end=end,
        seed=seed,
        locale=locale,
        progress=progress,
        truth_path=truth_path,
    )
