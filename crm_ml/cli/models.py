"""``crm-ml`` commands for features and models: features build, train, score."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from crm_ml.cli._common import _add_commands, _as_of, _check_as_of, _interactive, _open_store
from crm_ml.config import Settings
from crm_ml.errors import ValidationError

if TYPE_CHECKING:
    from crm_ml.models.scoring_targets import ScoringTarget

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("crm-churn@champion", "crm-propensity@champion")


def _check_category(kind: str, category: str | None) -> None:
    """Refuse --category before any snapshot is built: it only narrows the propensity label."""
    from crm_ml.features.spec import MAJOR_CATEGORIES

    if category is None:
        return
    if kind != "propensity":
        raise ValidationError(
            f"--category applies to `crm-ml train propensity` only (buying in one category); "
            f"a {kind} model covers every purchase. Drop --category {category}."
        )
    if category not in MAJOR_CATEGORIES:
        raise ValidationError(
            f"Unknown category {category!r}; expected one of {', '.join(MAJOR_CATEGORIES)}."
        )


def _backtest_snapshots(text: str) -> int:
    """Parse --snapshots: a backtest fits trees, calibrates and tests on one snapshot each."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if count < 3:
        raise argparse.ArgumentTypeError(
            f"{count} is too few: the backtest fits the trees on the earliest snapshots, "
            "calibrates on the next and tests on the latest, so use 3 or more (default 5)"
        )
    return count


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Backtest, train, log and register a churn or propensity model."""
    from crm_ml.features import training_frame
    from crm_ml.models import train_model
    from crm_ml.models.evaluation import ACTIVE_DAYS

    _check_category(args.kind, args.category)
    store = _open_store(settings)
    label = "churn" if args.kind == "churn" else "purchase"
    data = training_frame(
        store,
        args.snapshots,
        args.horizon_days,
        args.gap_days,
        label=label,
        category=args.category,
        progress=_interactive(),
    )
    print(data.prevalence.to_string())
    if data.erased:
        print(data.erased_note)
    result = train_model(
        args.kind,
        data,
        settings,
        category=args.category,
        gap_days=args.gap_days,
        store=store,
        register=not args.no_register,
        progress=_interactive(),
    )
    print(result.backtest.metrics.to_string())
    active = result.backtest.active_metrics
    if not active.empty:
        customers = int(active["customers"].iloc[0])  # the model's row comes first
        print(
            f"Among the {customers:,} test customers who bought in the last {ACTIVE_DAYS} days, "
            "those churn lists act on (customers gone longer are easy to call):"
        )
        print(active[["roc_auc", "pr_auc", "brier", "ece"]].to_string())
    if result.registered is not None:
        reg = result.registered
        print(f"Registered {reg.name} v{reg.version} as {reg.alias}: {reg.reason}")
    return 0


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    """Score every customer as of a date with a registered model, with reasons."""
    from crm_ml.features import customer_features
    from crm_ml.models.scoring import score_customers
    from crm_ml.models.scoring_targets import scoring_target

    store = _open_store(settings)
    _check_as_of(store, args.as_of)
    # Resolve every alias first: a typo fails before features are built, and the
    # version printed is the one that scores, even if an alias moves meanwhile.
    targets = {ref: scoring_target(ref, settings) for ref in args.model or DEFAULT_MODELS}
    features = customer_features(store, args.as_of, progress=_interactive())
    for ref, target in targets.items():
        summary = score_customers(
            store,
            features,
            args.as_of,
            model=target,
            settings=settings,
            language=settings.language,
            attribution=args.attribution,
            progress=_interactive(),
        )
        print(f"{ref} (version {target.version}) as of {args.as_of:%Y-%m-%d}:")
        print(summary.to_string())
        print(_where_written(target))
        for note in ("left_out_note", "erased_note"):
            if summary.attrs.get(note):
                print(summary.attrs[note])
    return 0


def _where_written(target: ScoringTarget) -> str:
    """Say which ``score.model_name`` a run wrote, and whether tags and lists read it."""
    if target.is_champion:
        return (
            f"Written as {target.key}: the champion's scores, which tags, segments, lists "
            "and reports read."
        )
    champion = f"version {target.champion}" if target.champion else "it has no champion yet"
    return (
        f"Written apart as {target.key} (a shadow run; version {target.version} is not the "
        f"champion): tags, segments, lists and reports keep reading {target.name}, the "
        f"champion's scores ({champion}). Compare them with read_scores(store, "
        f'model_name="{target.key}", as_of=...).'
    )


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    """Show each registered version: aliases, backtest AUC, why, label and training run."""
    import pandas as pd

    from crm_ml.errors import NotFoundError
    from crm_ml.models.tracking import crm_model_names, list_versions

    found = 0
    for name in args.name or crm_model_names(settings):
        try:
            versions = list_versions(name, settings).reset_index()
        except NotFoundError as exc:
            print(f"{name}: {exc}")
            continue
        found += 1
        versions["registered_utc"] = versions["registered_utc"].dt.strftime("%Y-%m-%d %H:%M")
        versions["labels_until"] = versions["labels_until"].dt.strftime("%Y-%m-%d").fillna("")
        print(f"{name}:")
        for text in ("aliases", "promotion_reason", "label"):  # read left to right
            width = max(int(versions[text].str.len().max()), len(text))
            versions[text] = versions[text].str.ljust(width)
        with pd.option_context("display.max_colwidth", 100, "display.width", 250):
            print(
                versions.to_string(
                    index=False,
                    float_format="{:.4f}".format,
                    justify="left",
                )
            )
    return 0 if found else 2


def cmd_models_check(args: argparse.Namespace, settings: Settings) -> int:
    """Measure past scoring runs against what customers did next; 1 when one went wrong."""
    import pandas as pd

    from crm_ml.models.monitoring import check_models
    from crm_ml.models.plots import outcomes_figure
    from crm_ml.models.refresh import PRODUCTION_MODELS

    models = args.name or PRODUCTION_MODELS
    store = _open_store(settings)
    checks = check_models(store, settings=settings, models=models, progress=_interactive())
    if checks.empty:
        print("No scores to check: score customers first (crm-ml score).")
        return 2
    shown = checks.reset_index()
    for column in ("as_of", "window_ends"):
        shown[column] = pd.to_datetime(shown[column]).dt.strftime("%Y-%m-%d")
    columns = ["model", "as_of", "model_version", "status", "customers", "expected", "actual",
               "roc_auc", "auc_low", "auc_high", "backtest_auc", "verdict"]  # fmt: skip
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        print(shown[columns].to_string(index=False, float_format="{:.3f}".format, na_rep=""))
    if args.figure is not None:
        outcomes_figure(checks, language=settings.language).savefig(args.figure, dpi=120)
        print(f"Figure: {args.figure}")
    return 1 if checks["alert"].any() else 0


def cmd_models_promote(args: argparse.Namespace, settings: Settings) -> int:
    """Move an alias (champion by default) to a version by hand, with the reason."""
    from crm_ml.models.tracking import set_alias

    set_alias(args.name, args.version, args.alias, settings, reason=args.reason)
    print(f"{args.name} v{args.version} is now {args.alias}: manual: {args.reason}")
    return 0


def cmd_features_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build the customer feature table as of a date and write it to Parquet."""
    from crm_ml.features import build_feature_file
    from crm_ml.features.spec import when_text

    path = build_feature_file(
        _open_store(settings), args.as_of, Path(args.out), progress=_interactive(), private=True
    )
    log.warning(
        "%s holds per-customer features keyed by customer_id, sensitive ones included (age band, "
        "gender, maternity affinity, consent flags). It is readable by its owner only (mode "
        "600); keep it so, and delete it when it is no longer needed.",
        path,
    )
    # The time too when given: a cut at China's midnight is 16:00 UTC the day before.
    print(f"Features as of {when_text(args.as_of)} written to {path}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_models(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="backtest, train and register a churn or propensity model in MLflow",
        description="Stack SNAPSHOTS feature snapshots GAP_DAYS apart (the latest as late as the "
        "data allows), label each over the next HORIZON_DAYS, backtest against recency, RFM and "
        "BG/NBD baselines, and register the model (crm-churn, crm-propensity, or "
        "crm-propensity-CATEGORY with --category). It becomes 'champion' only if its backtest "
        "AUC is not worse than the current champion's nor the best baseline's; otherwise "
        "'challenger'. A snapshot with fewer than 1,000 customers or 100 of either class "
        "is warned about: its AUC is too uncertain to trust.",
    )
    train.add_argument("kind", choices=["churn", "propensity"])
    train.add_argument(
        "--snapshots",
        type=_backtest_snapshots,
        default=5,
        help="number of snapshots, at least 3: trees, calibration and test (default 5)",
    )
    train.add_argument(
        "--gap-days", type=int, default=90, help="days between snapshots (default 90)"
    )
    train.add_argument("--horizon-days", type=int, default=90, help="label window (default 90)")
    train.add_argument(
        "--category",
        help="propensity only: buying in this product category, e.g. food or beauty; "
        "registered as crm-propensity-CATEGORY, which `crm-ml score` uses only when named "
        "with --model",
    )
    train.add_argument("--no-register", action="store_true", help="backtest only")
    train.set_defaults(func=cmd_train)
    score = sub.add_parser(
        "score",
        help="score every customer as of a date, with reasons",
        description="Score every customer as of a date with the champion models, with reasons. "
        "The churn model scores only customers who bought before the date (its label "
        "leaves out who never bought); the summary says how many have no churn score.",
    )
    score.add_argument(
        "--as-of",
        type=_as_of,
        required=True,
        help="score customers as they were on this date (features use rows before it), e.g. "
        "the day after the last order; refused before the data starts or more than 90 days "
        "after the last order",
    )
    score.add_argument(
        "--model",
        action="append",
        help="registered model, repeatable "
        "(default: crm-churn@champion and crm-propensity@champion; a category model such as "
        "crm-propensity-beauty@champion only when named). Only the champion writes the "
        "scores tags, lists and reports read (stored as crm-churn); another version is a "
        "shadow run, stored as the reference given (crm-churn@challenger, crm-churn/5)",
    )
    score.add_argument(
        "--attribution",
        choices=["shap", "path"],
        default="shap",
        help="how reasons are attributed: exact SHAP (default), or the path method "
        "(its top reason is SHAP's for about two customers in three; no faster)",
    )
    score.set_defaults(func=cmd_score)


def _add_registry(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="registered model versions: list, check, promote")
    msub = _add_commands(p, "models_command")
    ls = msub.add_parser(
        "list", help="each version's aliases, backtest AUC and why it got its alias"
    )
    ls.add_argument(
        "name",
        nargs="*",
        help="registered names (default: crm-churn, crm-propensity and any "
        "crm-propensity-CATEGORY)",
    )
    ls.set_defaults(func=cmd_models_list)
    check = msub.add_parser(
        "check",
        help="how past scores turned out: each run against what customers then did",
        description="For each stored scoring run whose outcome window has closed, label "
        "its customers by what they did next and compare the run's ROC-AUC (95%% interval) "
        "with its version's backtest AUC, and the customers it predicted with those who "
        "did. Runs whose window is still open, or whose outcomes the version learned from, "
        "are listed but not measured. Exits with 1 when a run ranks worse than its backtest "
        "or over- or under-predicts beyond chance, so a scheduled check can alert.",
    )
    check.add_argument(
        "name", nargs="*", help="models to check (default: crm-churn and crm-propensity)"
    )
    check.add_argument("--figure", type=Path, help="also save the figure to this PNG file")
    check.set_defaults(func=cmd_models_check)
    promote = msub.add_parser(
        "promote",
        help="move an alias to a version by hand (e.g. roll back the champion)",
        description="Point NAME@ALIAS at VERSION. crm-ml score and the reports use "
        "NAME@champion, so this changes which version scores customers from now on. "
        "The reason is kept on the version in MLflow.",
    )
    promote.add_argument("name", help="registered name, e.g. crm-churn")
    promote.add_argument("version", help="version number, e.g. 1 (crm-ml models list shows them)")
    promote.add_argument("--reason", required=True, help="why, kept on the version")
    promote.add_argument("--alias", choices=["champion", "challenger"], default="champion")
    promote.set_defaults(func=cmd_models_promote)


def _add_features(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="customer features")
    fsub = _add_commands(p, "features_command")
    b = fsub.add_parser("build", help="build the feature table as of a date")
    b.add_argument("--as-of", type=_as_of, required=True, help="features use rows before this")
    b.add_argument("--out", required=True, help="Parquet file to write, e.g. features.parquet")
    b.set_defaults(func=cmd_features_build)
