"""The main job: demo store → features → models → scores → tags → segments → reports.

:func:`run_demo` is what ``make demo`` runs on the embedded default store.
Each step is one call into the package; they are listed here, in order, so
the whole flow reads in one place.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crm_ml.config import Settings
from crm_ml.errors import ConfigError
from crm_ml.reporting import notebook_path
from crm_ml.store import Store, init_store
from crm_ml.store.connection import store_file

log = logging.getLogger(__name__)

#: Segments the demo saves, from the built-in templates, and the channel their lists use.
DEMO_SEGMENTS = ("high_value_at_risk", "churn_winback", "points_reminder", "reactivation")
#: Training: this many snapshots, this far apart, labelled over this horizon.
SNAPSHOTS, GAP_DAYS, HORIZON_DAYS = 5, 90, 90
#: Below this, the models are often no better than the baselines, stay challenger,
#: and the demo would stop with nothing scored.
MIN_DEMO_CUSTOMERS = 1_000
#: The models the demo trains, as (kind, label), and the references it scores with.
KINDS = (("churn", "churn"), ("propensity", "purchase"))
MODELS = ("crm-churn@champion", "crm-propensity@champion")
#: The report notebooks the demo publishes, from the project's ``notebooks/``.
DEMO_REPORTS = ("retention_analysis", "segment_lists")

Echo = Callable[[str], None]


def _fresh_embedded_store(settings: Settings) -> Store:
    """Re-create the store, but only if it is a file inside the project's data folder."""
    path = store_file(settings.database_url)
    inside_data = (
        path is not None
        and path.is_absolute()
        and settings.data_dir.resolve() in path.resolve().parents
    )
    if not inside_data:
        raise ConfigError(
            f"The demo re-creates its store and will not wipe {settings.database_url!r}, which is "
            f"not a file under {settings.data_dir}. Unset CRM_ML_DATABASE_URL, or pass --keep to "
            "add demo data to an empty store."
        )
    for suffix in ("", ".wal", ".truth.parquet"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Store(settings.database_url, create=True)


@contextmanager
def _step(echo: Echo, number: int, total: int, title: str) -> Iterator[None]:
    echo(f"[{number}/{total}] {title} …")
    started = time.perf_counter()
    yield
    echo(f"      done in {time.perf_counter() - started:.1f} s")


def _demo_secret(settings: Settings, echo: Echo) -> Path | None:
    """Without ``CRM_ML_EXPORT_SECRET``, export the demo's lists under the key kept for them.

    Returns where that key is kept (None when the environment gave one).

    ``crm-ml lists find`` needs the key a list was written with: a key made for
    one run and forgotten would leave the demo's lists unsearchable for good.
    So the key is made once in ``data/`` (git-ignored, readable by its owner
    only) and reused by later demo runs, and the run says where it is.
    """
    from crm_ml.segments.masking import SECRET_ENV

    if os.environ.get(SECRET_ENV):
        return None
    path = _demo_secret_file(settings)
    made = _make_secret_file(path)
    os.environ[SECRET_ENV] = _read_secret_file(path)
    shown = path.relative_to(settings.root) if path.is_relative_to(settings.root) else path
    echo(
        f"      ({SECRET_ENV} not set: the lists use the demo's key, "
        f"{'made in' if made else 'kept in'} {shown}. To find a customer in them or export "
        f"from JupyterLab later, first: export {SECRET_ENV}=$(cat {shown}))"
    )
    return shown


def _demo_secret_file(settings: Settings) -> Path:
    from crm_ml.segments.find import DEMO_SECRET_FILE

    return settings.data_dir / DEMO_SECRET_FILE


def _make_secret_file(path: Path) -> bool:
    """Write a new random key to ``path``, readable by its owner only, unless there is one.

    Returns whether it was made. The key is written to a hidden file first and
    linked into place, so a reader never sees the file empty.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_hex(32) + "\n")
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        draft.unlink(missing_ok=True)
    return True


def _read_secret_file(path: Path) -> str:
    """Return the key kept in ``path``; refuse one that exports would refuse."""
    from crm_ml.segments.masking import SECRET_ENV, require_secret

    key = path.read_text(encoding="utf-8").strip()
    try:
        require_secret(key)
    except ConfigError as exc:
        raise ConfigError(
            f"The demo's export key in {path} cannot be used: {exc} Set {SECRET_ENV}, or delete "
            "the file to have the demo make a new key (lists written with the old one can then "
            "be searched only with a copy of it)."
        ) from exc
    return key


def _train(
    store: Store, settings: Settings, kind: str, label: str, *, labels_until: datetime | None = None
) -> Any:
    """Train and register one model; with ``labels_until``, on data up to that date only."""
    from crm_ml.features import training_frame
    from crm_ml.features.training import snapshot_dates
    from crm_ml.models import train_model

    snapshots: int | list[datetime] = SNAPSHOTS
    if labels_until is not None:
        snapshots = snapshot_dates(labels_until, SNAPSHOTS, HORIZON_DAYS, GAP_DAYS)
    data = training_frame(store, snapshots, HORIZON_DAYS, GAP_DAYS, label=label)
    return train_model(kind, data, settings, store=store)  # type: ignore[arg-type]


def _score(store: Store, settings: Settings, as_of: datetime) -> Any:
    """Score every customer with both champions as of ``as_of``; return the features used."""
    from crm_ml.features import customer_features
    from crm_ml.models import score_customers

    features = customer_features(store, as_of)
    for model in MODELS:
        score_customers(
            store, features, as_of, model=model, settings=settings, language=settings.language
        )
    return features


def _last_quarter(store: Store, settings: Settings, earlier: datetime, echo: Echo) -> None:
    """Train both models on the data up to ``earlier`` only, and score as of then.

    A retailer that scores every quarter has such a run by now, and its window
    has closed: the ``retention_analysis`` report measures it against what its
    customers did since, which a store holding only today's scores cannot show.
    """
    for kind, label in KINDS:
        trained = _train(store, settings, kind, label, labels_until=earlier)
        echo(f"      {kind}: " + _describe_training(trained).strip())
    _score(store, settings, earlier)


def _describe_training(result: Any) -> str:
    metrics = result.backtest.metrics
    ours = metrics.iloc[0]
    line = f"      backtest AUC {ours['roc_auc']:.3f}"
    baselines = metrics.iloc[1:]
    if len(baselines):
        best = baselines["roc_auc"].idxmax()
        line += f" (best baseline {best}: {baselines['roc_auc'].max():.3f})"
    if result.registered is not None:
        reg = result.registered
        line += f"; registered {reg.name} v{reg.version} as {reg.alias}"
    return line


def _save_demo_segments(store: Store) -> list[str]:
    from crm_ml.segments import SEGMENT_TEMPLATES, save_segment

    names = []
    for name in DEMO_SEGMENTS:
        segment = SEGMENT_TEMPLATES[name].instantiate()
        save_segment(store, segment, actor="crm-ml demo")
        names.append(segment.name)
    return names


def _truth_path(settings: Settings, store: Store) -> Path | None:
    """Beside the store file (the generator's default), or under ``data/`` for a server store."""
    return None if store_file(store.url) else settings.data_dir / "demo.truth.parquet"


def run_demo(
    settings: Settings,
    *,
    n_customers: int = 20_000,
    seed: int = 7,
    fresh: bool = True,
    echo: Echo = print,
    progress: bool = True,
) -> Path:
    """Run the whole flow on a synthetic retailer and publish the reports.

    Parameters
    ----------
    settings : Settings
        Where the store, MLflow and reports live.
    n_customers : int
        Number of synthetic customers.
    seed : int
        Random seed; the same seed gives the same store.
    fresh : bool
        Re-create the store first (only allowed for a file under ``data/``).
    echo : callable
        Where progress lines go.
    progress : bool
        Draw a progress bar while generating (off when stderr is a log file).

    Returns
    -------
    Path
        The folder the reports were published to, ``reports/<as_of>/``.
    """
    from crm_ml.demo import generate_demo_store
    from crm_ml.reporting import run_report
    from crm_ml.store.identity import merge_customers, plan_merges
    from crm_ml.tags import tags_apply_command

    _check_demo(settings, n_customers)
    total = 9
    # The demo builds a store either way (init_store next), so --keep may create the file too.
    store = _fresh_embedded_store(settings) if fresh else Store(settings.database_url, create=True)
    with _step(echo, 1, total, f"Generating a loyalty retailer of {n_customers:,} customers"):
        init_store(store)
        summary = generate_demo_store(
            store,
            n_customers=n_customers,
            seed=seed,
            truth_path=_truth_path(settings, store),
            progress=progress,
        )
        echo(
            f"      {summary.n_records:,} customer records, {sum(summary.rows.values()):,} rows, "
            f"{summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d}"
        )
    as_of = datetime.combine(summary.end.date() + timedelta(days=1), datetime.min.time())
    with _step(echo, 2, total, "Merging duplicate customers (shared verified phone or card)"):
        result = merge_customers(store, plan_merges(store), at=as_of, actor="crm-ml demo")
        echo(f"      {result.summary().splitlines()[0]}")
    earlier = as_of - timedelta(days=HORIZON_DAYS)
    title = f"Last quarter's models: trained on data to {earlier:%Y-%m-%d}, scoring as of then"
    with _step(echo, 3, total, title):
        _last_quarter(store, settings, earlier, echo)
    for number, (kind, label) in enumerate(KINDS, 4):
        with _step(echo, number, total, f"Training the {kind} model (MLflow in mlruns/)"):
            echo(_describe_training(_train(store, settings, kind, label)))
    with _step(echo, 6, total, f"Scoring every customer as of {as_of:%Y-%m-%d}, with reasons"):
        features = _score(store, settings, as_of)
    with _step(echo, 7, total, "Auto-tagging (history kept) and saving segments"):
        echo(
            "      "
            + tags_apply_command(store, as_of, features=features).splitlines()[0].rstrip(":")
        )
        echo("      segments: " + ", ".join(_save_demo_segments(store)))
    demo_key = _demo_secret(settings, echo)
    day = as_of.date()
    for number, report in enumerate(DEMO_REPORTS, 8):
        with _step(echo, number, total, f"Report: {report}"):
            run_report(settings, report, as_of=day)
    folder = settings.reports_dir / f"{day:%Y-%m-%d}"
    echo(_closing_words(settings, folder, demo_key))
    return folder


def _check_demo(settings: Settings, n_customers: int) -> None:
    """Refuse, before any work, a demo that could not finish.

    Raises
    ------
    ConfigError
        For fewer than :data:`MIN_DEMO_CUSTOMERS` customers.
    NotFoundError
        If a report notebook is missing (``CRM_ML_HOME`` pointing away from the project).
    """
    if n_customers < MIN_DEMO_CUSTOMERS:
        raise ConfigError(
            f"The demo needs at least {MIN_DEMO_CUSTOMERS:,} customers, got {n_customers:,}: "
            "with fewer, the models are often no better than the baselines, stay challenger, "
            "and there is nothing to score or report."
        )
    for report in DEMO_REPORTS:
        notebook_path(settings, report)


def _closing_words(settings: Settings, folder: Path, demo_key: Path | None) -> str:
    lists = sorted(p for p in folder.rglob("*.csv"))
    lines = [
        "",
        f"Reports: {folder}",
        *[f"  {p.relative_to(settings.root)}" for p in sorted(folder.glob("*.html"))],
        f"Lists ({len(lists)} CSV files, UTF-8 with BOM, one per account manager):",
        *[f"  {p.relative_to(settings.root)}" for p in lists[:8]],
        *(["  …"] if len(lists) > 8 else []),
        "",
        "Explore in JupyterLab:   .venv/bin/jupyter lab notebooks/",
        "MLflow UI:               MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow server "
        f"--backend-store-uri {settings.mlflow_tracking_uri} --workers 1 --host 127.0.0.1",
        # The lists' 匿名编号 are made with this key: `lists find` and JupyterLab exports need it.
        *(
            [f"Lists' key:              export CRM_ML_EXPORT_SECRET=$(cat {demo_key})"]
            if demo_key
            else []
        ),
    ]
    return "\n".join(lines)
