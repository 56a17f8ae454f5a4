"""MLflow tracking and registry: the one module of crm_ml that imports mlflow.

- The tracking store is the database named by ``Settings.mlflow_tracking_uri``
  (``sqlite:///<root>/mlruns/mlflow.db`` by default); experiments keep their
  artifacts under ``<root>/mlruns/artifacts/<experiment>``, an absolute path,
  so a notebook run from ``notebooks/`` writes to the same place as the CLI.
- Each training run logs parameters, snapshot dates and windows, the feature
  list, backtest metrics (model and baselines), lift and precision tables,
  the figures, and the model as an MLflow *pyfunc* whose artifacts are the
  LightGBM booster (text) and a JSON schema with the calibrator, so nothing is
  pickled but a tiny wrapper class and no skops trust list is needed.
- Each model learns one label and registers under its own name:
  ``crm-churn``, ``crm-propensity`` (a purchase of anything) and
  ``crm-propensity-<category>`` (a purchase in one category, see
  :func:`registered_name`). The label is a tag of every version, and a
  version is never compared with a champion trained on another label.
- The new version gets the ``champion`` alias only if the rules of
  :mod:`crm_ml.models.promotion` allow (its backtest AUC not below the
  champion's on the same backtest nor the best baseline's, same label and
  horizon, not tested on older data); otherwise ``challenger``. The decision
  and why are tags on the version and the run. When the test customers or
  labels differ (an erasure, newer data), the champion's recipe is re-fitted
  with its own training design on the new frame, and the reason gives that
  AUC and the one the champion recorded.
- Tags never claim an alias the version lost: when an alias moves, the
  version it left has its ``promotion`` tag rewritten and its reason kept
  behind "no longer champion (v2 took the alias, <when>)".
- A version is created with all its tags in one registry call, after the
  decision, and gets its alias last: a training run killed before leaves no
  version. A version without the ``backtest_roc_auc`` tag (left by an
  interrupted run of an older crm_ml, or registered by hand) was never vetted:
  :func:`list_versions` says so, and it can neither be promoted nor score.
- A training run killed outright (``kill -9``, a lost machine) cannot end its
  MLflow run, which would look live for ever. Each run is tagged with its
  host and process; the next training run of the same model ends as
  ``KILLED`` those whose process is gone (see :func:`_end_abandoned_runs`).
- Lineage: the run records the crm_ml version, the git commit of a crm_ml
  checkout (``mlflow.source.git.commit``), the store URL without password,
  the data's last order and the row counts; a version's ``run_id`` (shown by
  :func:`list_versions`) leads from a score row's ``model_name`` and
  ``model_version`` to that run. A run trained by a report notebook is tagged
  with the report and, once it has run, holds the executed notebook
  (:mod:`crm_ml.report_trace`, :func:`attach_report`).

Loading ``models:/crm-churn@champion`` with :func:`load_model` gives back the
fitted :class:`~crm_ml.models.estimators.BoostedClassifier`, which scores and
explains; ``mlflow.pyfunc.load_model`` gives probabilities (and reasons with
``params={"reasons": True}``, in ``params["language"]``, else
``CRM_ML_LANGUAGE``, else Chinese) to any MLflow tool, e.g. ``spark_udf``.
Its signature types categorical features as *any*, so the frame
``customer_features`` returns (pandas ``category`` columns) is accepted as
it is, as are text columns.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec
from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM
from mlflow.utils.time import get_current_time_millis
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

import crm_ml
from crm_ml.config import Settings
from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.models.estimators import BoostedClassifier, load_saved_model
from crm_ml.models.evaluation import BacktestResult, BacktestSplit
from crm_ml.models.metrics import calibration_by_decile
from crm_ml.models.promotion import (
    CHALLENGER,
    CHAMPION,
    VETTED_TAG,
    TrainingDesign,
    below_baseline,
    decide_alias,
    design_from_tags,
    design_not_reproducible,
    learnt_from_older_data,
    model_auc_se,
    other_horizon,
    other_label,
    refitted_how,
)
from crm_ml.models.training import REGISTERED_NAMES, registered_name
from crm_ml.processes import HOST, PID, process_gone, this_process
from crm_ml.report_trace import note_training_run

log = logging.getLogger(__name__)

_KIND_OF = {name: kind for kind, name in REGISTERED_NAMES.items()}
_MODEL_DIR = "crm_model"
#: The ``promotion_reason`` :func:`list_versions` shows for a version without it.
UNFINISHED_REASON = "training run did not finish: not vetted, cannot be promoted or score"
_PROGRESS_BAR_SWITCH = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _train_command(name: str) -> str | None:
    """Return the ``crm-ml train`` command that registers ``name``, if crm_ml names it."""
    if name in _KIND_OF:
        return f"crm-ml train {_KIND_OF[name]}"
    prefix = REGISTERED_NAMES["propensity"] + "-"
    if name.startswith(prefix) and re.fullmatch(r"[a-z0-9-]+", name.removeprefix(prefix)):
        return f"crm-ml train propensity --category {name.removeprefix(prefix).replace('-', '_')}"
    return None


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    names = ("lightgbm", "pandas", "numpy", "scikit-learn", "scipy", "mlflow")
    return [f"{name}=={version(name)}" for name in names]


def configure_tracking(settings: Settings) -> str:
    """Point MLflow at the settings' tracking store (creating ``mlruns/``); return the URI."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str, settings: Settings) -> str:
    """Return experiment ``name``'s id, creating it with artifacts under ``mlruns/artifacts``."""
    configure_tracking(settings)
    client = MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if settings.mlflow_tracking_uri.startswith(("sqlite:", "postgresql", "mysql")):
        folder = settings.mlruns_dir.resolve() / "artifacts" / name
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    return str(client.create_experiment(name, artifact_location=location))


class CrmPyfuncModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """Pyfunc wrapper: rebuilds the crm_ml model from its booster and JSON schema."""

    def load_context(self, context: Any) -> None:
        """Load the fitted model from the logged artifacts."""
        self.model = load_saved_model(Path(context.artifacts[_MODEL_DIR]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Return ``probability`` and ``reasons`` (JSON; empty unless ``params["reasons"]``).

        Indexed like ``model_input`` (``customer_id`` for ``customer_features``
        output), so scores join back by id, not by row order.
        """
        from crm_ml.models.reasons import model_context, reasons_json

        params = params or {}
        probability = self.model.predict_proba(model_input)[:, 1]
        out = pd.DataFrame({"probability": probability}, index=model_input.index)
        out["reasons"] = ""
        if params.get("reasons"):
            contrib = self.model.contributions(
                model_input, method=str(params.get("attribution", "shap"))
            )
            out["reasons"] = reasons_json(
                contrib,
                model_input,
                top_k=int(params.get("top_k", 3)),
                language=pyfunc_language(params.get("language")),
                context=model_context(self.model),
                probability=probability,
                target=self.model.target,
            ).to_numpy()
        return out


def pyfunc_language(requested: Any) -> str:
    """Return the language of the pyfunc's reasons.

    ``requested`` (the ``language`` param) when given, else ``CRM_ML_LANGUAGE``
    read at predict time, as ``crm-ml score`` does, else ``zh`` (the settings'
    default). Models logged before this rule declared ``en`` as the param's
    default, which MLflow fills in, so they keep English unless asked.
    """
    from crm_ml.models.phrases import LANGUAGES

    chosen = str(requested or os.environ.get("CRM_ML_LANGUAGE") or "zh")
    if chosen not in LANGUAGES:
        raise ValidationError(
            f"Reasons language must be one of {', '.join(LANGUAGES)}, got {chosen!r} "
            "(params['language'] or CRM_ML_LANGUAGE)."
        )
    return chosen


def _typical_value(values: pd.Series) -> pd.Series:
    """Return the column's median (numbers) or most common value (the rest), in its dtype."""
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        middle = values.median()
        if is_integer_dtype(values) and not pd.isna(middle):
            middle = round(middle)
        return pd.Series([middle]).astype(values.dtype)
    common = values.mode(dropna=True).iloc[:1].tolist()
    return pd.Series(common or [None], dtype=values.dtype)


def _signature_example(model: BoostedClassifier, example: pd.DataFrame) -> pd.DataFrame:
    """Return one made-up input row, with categoricals as text, which MLflow's schema understands.

    The input example is stored with the registered model and travels with it, so
    it is no customer's row (personal data) but each feature's median or most
    common value. Columns keep their dtypes, so the signature's types are those
    of the training frame: MLflow refuses int64 input for a double column, and
    counts are declared int64 with a fill of 0 (never missing).
    """
    features = example[list(model.feature_names_in_)]
    frame = pd.concat([_typical_value(features[col]) for col in features], axis=1)
    frame.columns = features.columns
    for col in model.categories_:
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _may_be_missing(model: BoostedClassifier, example: pd.DataFrame) -> frozenset[str]:
    """Return the features missing somewhere in the training frame: optional in the signature."""
    features = example[list(model.feature_names_in_)]
    return frozenset(features.columns[features.isna().any().to_numpy()])


def _model_signature(
    model: BoostedClassifier, inputs: pd.DataFrame, *, optional: frozenset[str] = frozenset()
) -> ModelSignature:
    """Return the pyfunc's signature, with the categorical features typed *any*.

    ``customer_features`` gives categoricals as pandas ``category`` columns,
    which MLflow refuses for a ``string`` column ("Can not safely convert
    category to <U0"); *any* lets them, text and missing values through to
    the model, which maps every form to its learned categories. Spark scoring
    casts such columns to text (:mod:`crm_ml.spark.scoring`). The ``language``
    param defaults to empty: ``CRM_ML_LANGUAGE`` at predict time. Columns in
    ``optional`` (those the training data leaves missing somewhere) are not required.
    """
    outputs = pd.DataFrame({"probability": model.predict_proba(inputs)[:, 1], "reasons": ""})
    params = {"reasons": False, "top_k": 3, "language": "", "attribution": "shap"}
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; ours never do.
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(inputs, outputs, params=params)
    assert signature.inputs is not None
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType(), spec.name)
        if spec.name in model.categories_
        else ColSpec(spec.type, spec.name, required=spec.required and spec.name not in optional)
        for spec in signature.inputs.inputs
    ]
    return ModelSignature(Schema(columns), signature.outputs, signature.params)


def _log_model(model: BoostedClassifier, example: pd.DataFrame) -> Any:
    """Log the model to the active run, unregistered: the version is created once vetted."""
    inputs = _signature_example(model, example)
    signature = _model_signature(model, inputs, optional=_may_be_missing(model, example))
    with (
        tempfile.TemporaryDirectory() as tmp,
        _registry_prints_muted(),
        _artifact_progress_bars_off(),
    ):
        model.save(Path(tmp) / _MODEL_DIR)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=CrmPyfuncModel(),
            artifacts={_MODEL_DIR: str(Path(tmp) / _MODEL_DIR)},
            signature=signature,
            input_example=inputs,
            pip_requirements=_pip_requirements(),
        )


def _register_version(name: str, model_uri: str, tags: Mapping[str, str]) -> str:
    """Register the logged model as a new version of ``name`` with all its tags; return it.

    The version and its tags are one insert, so a run killed at any moment
    leaves either no version or a vetted one (see :func:`_require_vetted`).
    """
    with _registry_prints_muted():
        version = mlflow.register_model(model_uri, name, tags=dict(tags))
    return str(version.version)


#: MLflow's notes on every log_model that say nothing about this model: our
#: pyfunc wrapper is a class of crm_ml's own (pickled by design), and the input
#: example is always validated.
_ROUTINE_MLFLOW_NOTES = ("causes it to be serialized using CloudPickle", "Validating input example")


class _RoutineNotesFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in _ROUTINE_MLFLOW_NOTES)


@contextmanager
def _registry_prints_muted() -> Iterator[None]:
    """Mute MLflow's "Successfully registered model" / "Created version" lines and routine notes.

    The lines are printed, not logged, so its log level does not reach them;
    we report the version and its alias ourselves. Muted unless MLflow logs at
    DEBUG (``crm-ml -v``, or the caller's logging set so); errors still raise.
    """
    if logging.getLogger("mlflow").getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    enabled = MLFLOW_LOGGING_STREAM.enabled
    MLFLOW_LOGGING_STREAM.enabled = False
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    routine = _RoutineNotesFilter()
    pyfunc_log.addFilter(routine)
    try:
        yield
    finally:
        pyfunc_log.removeFilter(routine)
        MLFLOW_LOGGING_STREAM.enabled = enabled


def _log_backtest(run_id: str, result: BacktestResult) -> None:
    # The metrics go in two calls, not one per value: each is a round trip to the server.
    scalars: dict[str, float] = {}
    for name, row in result.metrics.iterrows():
        prefix = "backtest" if name == "model" else str(name)
        scalars |= {f"{prefix}_{k}": float(v) for k, v in row.items() if math.isfinite(v)}
    # The same metrics over customers who bought lately (backtest_active_roc_auc …): the
    # headline AUC also ranks customers gone for years, whom any rule calls churned.
    for name, row in result.active_metrics.iterrows():
        prefix = "backtest_active" if name == "model" else f"{name}_active"
        scalars |= {f"{prefix}_{k}": float(v) for k, v in row.items() if math.isfinite(v)}
    if math.isfinite(se := model_auc_se(result)):
        scalars["backtest_roc_auc_se"] = se
    deciles = result.lift[result.lift["model"] == "model"].sort_values("decile")
    # Runs tables show a stepped metric's last step, so each curve gets a "_by_decile"
    # name and its top decile, the figure runs are compared on, a scalar of its own.
    now = get_current_time_millis()
    stepped = [
        Metric(f"backtest_{curve}_by_decile", float(row[curve]), now, int(row["decile"]))
        for _, row in deciles.iterrows()
        for curve in ("lift", "gains")
    ]
    if not deciles.empty:
        top = deciles.iloc[0]
        scalars["backtest_top_decile_lift"] = float(top["lift"])
        scalars["backtest_top_decile_gains"] = float(top["gains"])
    for _, row in result.precision[result.precision["model"] == "model"].iterrows():
        size = _list_size_name(row)
        for measure in ("precision", "recall", "lift"):
            scalars[f"backtest_{measure}_at_{size}"] = float(row[measure])
    mlflow.log_metrics(scalars)
    if stepped:
        MlflowClient().log_batch(run_id, metrics=stepped)

    if not result.active_metrics.empty:
        mlflow.log_text(result.active_metrics.to_csv(), "backtest/active_metrics.csv")
    predicted = result.predictions
    label = predicted.columns[1]  # customer_id, the label, then one column per model
    calibration = calibration_by_decile(predicted[label], predicted["model"])
    mlflow.log_text(calibration.to_csv(index=False), "backtest/calibration_by_decile.csv")
    mlflow.log_text(result.metrics.to_csv(), "backtest/metrics.csv")
    mlflow.log_text(result.lift.to_csv(index=False), "backtest/lift.csv")
    mlflow.log_text(result.precision.to_csv(index=False), "backtest/precision.csv")
    for key, fig in result.figures.items():
        mlflow.log_figure(fig, f"backtest/{key}.png")


def _list_size_name(row: pd.Series) -> str:
    """Name a list size as asked (``10pct``, ``top500``), not as realised, so keys stay stable.

    Top 10 % of 20,011 customers is 2,001 of them, 9.99813 %: naming the metric
    by that share would give every run its own key, which MLflow cannot compare.
    """
    nominal = float(row["nominal_size"]) if "nominal_size" in row.index else float(row["share"])
    if nominal < 1:
        return f"{round(nominal * 100, 4):g}pct"
    return f"top{int(nominal)}"


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version and the alias it was given."""

    name: str
    version: str
    alias: str
    reason: str
    run_id: str

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


def _current_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """Return the version holding the champion alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _design_from_run(client: MlflowClient, run_id: str | None) -> TrainingDesign | None:
    """Return the design of a training run from its split parameters, None if it lacks them.

    Versions registered before the design was a version tag have it here: every
    crm_ml training run logged its train, calibration and test snapshots.
    """
    try:
        params = client.get_run(run_id).data.params if run_id else {}
    except MlflowException:  # the run was deleted
        return None
    names = ("train_snapshots", "calibration_snapshot", "test_snapshot")
    if not all(params.get(n) for n in names):
        return None
    try:
        trees = tuple(pd.Timestamp(d) for d in params["train_snapshots"].split(","))
        split = BacktestSplit(
            trees,
            pd.Timestamp(params["calibration_snapshot"]),
            pd.Timestamp(params["test_snapshot"]),
            0,
        )
    except ValueError:
        return None
    return TrainingDesign.of_split(split, gap_days=str(params.get("gap_days", "")))


def _champion_design(client: MlflowClient, champion: ModelVersion) -> TrainingDesign | None:
    """Return the champion's training design: its tags, else its run's parameters."""
    return design_from_tags(champion.tags) or _design_from_run(client, champion.run_id)


#: Re-fits the champion's model on the given split of the new run's frame; returns its ROC-AUC.
Rescore = Callable[[BoostedClassifier, BacktestSplit], float]


def _champion_auc(
    client: MlflowClient,
    champion: ModelVersion,
    name: str,
    result: BacktestResult,
    rescore: Rescore | None,
    settings: Settings,
) -> tuple[float | None, str]:
    """Return the champion's AUC on this backtest (or None) and how it was found.

    On another backtest the champion is re-fitted with its own training design
    (:class:`TrainingDesign`); without a recorded design it is not compared.
    """
    version = str(champion.version)
    if champion.tags.get("backtest_id") == result.backtest_id:
        return float(str(champion.tags["backtest_roc_auc"])), "on the same backtest"
    if rescore is None:
        return None, "its backtest differs and no re-fit was allowed"
    design = _champion_design(client, champion)
    if design is None:
        return None, (
            "its backtest differs and its training design (which snapshots it learnt from) "
            "is not recorded, so it cannot be re-fitted as it was trained"
        )
    try:
        auc = rescore(
            load_model(f"models:/{name}/{version}", settings).model,
            design.split_at(result.split.test_as_of, result.split.horizon_days),
        )
    except ValidationError as exc:
        return None, f"its recipe cannot be re-fitted here ({exc})"
    return auc, refitted_how(design, champion)


def _not_refittable(
    client: MlflowClient, champion: ModelVersion, name: str, result: BacktestResult
) -> str | None:
    """Return why the champion, measured on another backtest, cannot be re-fitted fairly here."""
    if champion.tags.get("backtest_id") == result.backtest_id:
        return None
    design = _champion_design(client, champion)
    if design is None:
        return None  # said by _champion_auc: not comparable
    command = _train_command(name) or "crm-ml train"
    return design_not_reproducible(design, str(champion.version), result.split, command)


def _champion_horizon(client: MlflowClient, champion: ModelVersion) -> str | None:
    """Return the champion's horizon in days: its tag, else (older versions) its run's parameter."""
    theirs = champion.tags.get("horizon_days")
    if theirs is None and champion.run_id:
        theirs = client.get_run(champion.run_id).data.params.get("horizon_days")
    return theirs


def _promotion(
    client: MlflowClient,
    name: str,
    result: BacktestResult,
    rescore: Rescore | None,
    settings: Settings,
    *,
    label: str,
    horizon: str,
) -> tuple[str, str]:
    """Return ``(alias, reason)`` for a new version of ``name`` measured by ``result``."""
    champion = _current_champion(client, name)
    auc = float(result.metrics["roc_auc"].astype(float)["model"])
    if champion is None:
        alias, reason = decide_alias(auc, None, champion_version=None, how="no champion")
    else:
        refused = (
            other_label(champion, label)
            or other_horizon(champion, _champion_horizon(client, champion), horizon)
            or learnt_from_older_data(champion, result.split)
            or (_not_refittable(client, champion, name, result) if rescore else None)
        )
        if refused is not None:
            return CHALLENGER, refused
        champ_auc, how = _champion_auc(client, champion, name, result, rescore, settings)
        alias, reason = decide_alias(
            auc, champ_auc, champion_version=str(champion.version), how=how
        )
    beaten = below_baseline(result.metrics) if alias == CHAMPION else None
    return (CHALLENGER, beaten) if beaten is not None else (alias, reason)


def _git_commit() -> dict[str, str]:
    """Return the git commit of crm_ml's source, when it is a checkout (else nothing).

    Cheap and never fails: an installed package (site-packages), no git, or
    no repository just leaves the tags out.
    """
    source = Path(crm_ml.__file__).resolve().parent
    if "site-packages" in source.parts:
        return {}
    git = ["git", "-C", str(source)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    commit = head.stdout.strip()
    if head.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return {}
    dirty = "unknown" if status.returncode != 0 else str(bool(status.stdout.strip())).lower()
    return {"mlflow.source.git.commit": commit, "crm_ml_git_dirty": dirty}


#: Prefix of the run tags naming the process that started a training run (see crm_ml.processes).
_PROCESS_TAG = "crm_ml."
#: Why a run was ended by another process than its own.
_ENDED_BY_TAG = "crm_ml.ended_by"


def _process_tags() -> dict[str, str]:
    """Return the run tags naming this process, so a later training run can tell it is gone."""
    return {_PROCESS_TAG + key: value for key, value in this_process().items()}


def _started_by(tags: Mapping[str, str]) -> dict[str, str]:
    """Return what :func:`_process_tags` recorded, keyed as :func:`this_process` keys it."""
    return {
        key.removeprefix(_PROCESS_TAG): value
        for key, value in tags.items()
        if key.startswith(_PROCESS_TAG)
    }


def _running_runs(client: MlflowClient, experiment_id: str) -> Iterator[Run]:
    """Yield the experiment's runs whose status is still ``RUNNING``."""
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'", page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _end_abandoned_runs(client: MlflowClient, experiment_id: str) -> int:
    """End as ``KILLED`` the experiment's running runs whose crm_ml process is gone; count them.

    The reason is tagged before the status changes, so a sweep killed in
    between leaves a true tag on a run the next sweep ends. Runs whose process
    cannot be known gone (see :func:`crm_ml.processes.process_gone`) are left as they are.
    """
    ended = 0
    for run in _running_runs(client, experiment_id):
        started_by = _started_by(run.data.tags)
        if not process_gone(started_by):
            continue
        why = (
            f"crm_ml training: its process {started_by[PID]} on {started_by[HOST]} "
            "was no longer running"
        )
        client.set_tag(run.info.run_id, _ENDED_BY_TAG, why)
        client.set_terminated(run.info.run_id, "KILLED")
        ended += 1
    return ended


def _close_abandoned_runs(experiment_id: str, experiment: str) -> None:
    """Close abandoned training runs of ``experiment``; a registry refusal only warns.

    Tidying earlier runs must not stop this one: a tracking server may let a
    user end only their own runs.
    """
    try:
        ended = _end_abandoned_runs(MlflowClient(), experiment_id)
    except MlflowException as exc:
        log.warning(
            "Could not end %s's earlier training runs left RUNNING by killed processes (%s); "
            "training goes on, and such runs stay RUNNING until a training run allowed to "
            "end them (e.g. their owner's) does.",
            experiment,
            exc,
        )
        return
    if ended:
        log.info(
            "Ended %d earlier %s training run(s) as KILLED: their process was no longer running.",
            ended,
            experiment,
        )


def log_training_run(
    *,
    model: BoostedClassifier,
    result: BacktestResult,
    registered_name: str,
    settings: Settings,
    params: Mapping[str, Any],
    input_example: pd.DataFrame,
    rescore_champion: Rescore | None = None,
    label: str = "",
    tags: Mapping[str, str] | None = None,
    not_champion: str | None = None,
) -> RegisteredVersion:
    """Log one training run, register the model and give it the champion or challenger alias.

    Parameters
    ----------
    model : BoostedClassifier
        The fitted model to register (possibly re-fitted on all snapshots).
    result : BacktestResult
        The backtest that measured this model's recipe.
    params : mapping
        Extra run parameters (label, windows, snapshot dates, lineage...).
    rescore_champion : callable, optional
        Given the champion's model and the split of its own training design
        anchored at ``result``'s test snapshot, return its ROC-AUC there; used
        when the champion was measured on a different backtest.
    label : str
        What the model learned (``churn``, ``purchase``, ``purchase:beauty``):
        a tag of the version; a champion of another label is never compared.
    tags : mapping, optional
        More tags for the run and the version (category, store URL...). A
        ``horizon_days`` tag is part of what the model predicts: a champion of
        another horizon is never compared.
    not_champion : str, optional
        Why this version must stay challenger whatever its AUC (e.g. production
        scoring cannot build its features); it is the logged reason.
    """
    experiment_id = ensure_experiment(registered_name, settings)
    _close_abandoned_runs(experiment_id, registered_name)
    client = MlflowClient()
    lineage = {"label": label, **dict(tags or {})}
    # The process tags go in with the run, so no run of crm_ml's is ever without them.
    with mlflow.start_run(experiment_id=experiment_id, tags=_process_tags()) as run:
        mlflow.set_tags(note_training_run(run.info.run_id))  # the report it runs in, if any
        features = list(model.feature_names_in_)
        mlflow.log_params({**params, **result.split.as_params(), "n_features": len(features)})
        mlflow.log_params({"crm_ml_version": crm_ml.__version__})
        mlflow.log_params({f"model_{k}": v for k, v in model.get_params().items()})
        mlflow.set_tags({**lineage, **_git_commit()})
        mlflow.log_text("\n".join(features), "features.txt")
        _log_backtest(run.info.run_id, result)
        info = _log_model(model, input_example)
        auc = float(result.metrics["roc_auc"].astype(float)["model"])
        alias, reason = (
            (CHALLENGER, not_champion)
            if not_champion
            else _promotion(
                client,
                registered_name,
                result,
                rescore_champion,
                settings,
                label=label,
                horizon=str(lineage.get("horizon_days", "")),
            )
        )
        design = TrainingDesign.of_split(result.split, gap_days=str(params.get("gap_days", "")))
        vetting = {**_vetting_tags(result, auc, alias, reason), **design.as_tags()}
        if math.isfinite(se := model_auc_se(result)):
            vetting["backtest_roc_auc_se"] = f"{se:.4f}"
        version = _register_version(registered_name, info.model_uri, {**vetting, **lineage})
        # Last: a run killed before this leaves a vetted version that can be promoted by hand.
        client.set_registered_model_alias(registered_name, alias, version)
        mlflow.set_tags({"promotion": alias, "promotion_reason": reason})
        _retag_former_holders(client, registered_name)
    log.info("%s v%s registered as %s: %s", registered_name, version, alias, reason)
    return RegisteredVersion(registered_name, version, alias, reason, run.info.run_id)


def attach_report(run_ids: Sequence[str], files: Sequence[Path], settings: Settings) -> None:
    """Log a report's executed notebook and its page to the training runs it started.

    Under ``report/`` in each run's artifacts (see :mod:`crm_ml.report_trace`);
    a file the run did not get to write is left out.
    """
    configure_tracking(settings)
    client = MlflowClient()
    for run_id in run_ids:
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path), artifact_path="report")


def _vetting_tags(result: BacktestResult, auc: float, alias: str, reason: str) -> dict[str, str]:
    """Return the version tags of the backtest and the promotion decision."""
    return {
        "backtest_id": result.backtest_id,
        VETTED_TAG: repr(auc),
        "test_snapshot": result.split.test_as_of.date().isoformat(),
        "promotion": alias,
        "promotion_reason": reason,
    }


def _is_vetted(tags: Mapping[str, str]) -> bool:
    """Return whether ``log_training_run`` finished vetting the version (it has a backtest AUC)."""
    return VETTED_TAG in tags


def _require_vetted(client: MlflowClient, name: str, version: str) -> None:
    """Refuse a version its training run did not finish vetting: it may not score or be promoted.

    Older crm_ml registered the version before measuring and tagging it, so a
    training run killed in between left one that looks like any other but was
    never compared with the champion or the baselines.
    """
    found = client.get_model_version(name, version)
    if _is_vetted(found.tags):
        return
    command = _train_command(name) or "crm-ml train"
    raise ValidationError(
        f"{name} v{version} was never vetted: its training run {found.run_id} did not finish "
        "(it was interrupted after registering the version, before its backtest AUC, label "
        "and alias were recorded), so it cannot be promoted or score customers. Train again "
        f"with `{command}`; the version can be deleted in the MLflow UI."
    )


@dataclass(frozen=True)
class LoadedModel:
    """A registered model loaded back: the fitted estimator and where it came from."""

    model: BoostedClassifier
    name: str
    version: str


def _model_uri(ref: str) -> str:
    return ref if ref.startswith("models:/") else f"models:/{ref}"


def _registered_names(client: MlflowClient) -> list[str]:
    return sorted(str(m.name) for m in client.search_registered_models())


def _require_registered(client: MlflowClient, name: str, settings: Settings) -> None:
    """Refuse a registered-model name the registry does not know, listing those it does."""
    try:
        client.get_registered_model(name)
        return
    except MlflowException:
        pass
    known = ", ".join(_registered_names(client)) or "none"
    command = _train_command(name)
    advice = (
        f"Train one with `{command}` (train_model in Python)."
        if command
        else "`crm-ml models list` shows their versions (list_versions in Python)."
    )
    raise NotFoundError(
        f"No registered model named {name!r} in {settings.mlflow_tracking_uri}; "
        f"registered: {known}. {advice}"
    )


def _alias_version(client: MlflowClient, name: str, alias: str) -> str:
    aliases = _aliases(client, name)
    if alias in aliases:
        return aliases[alias]
    held = ", ".join(f"{a} (v{v})" for a, v in sorted(aliases.items())) or "none"
    hint = (
        " No version was good enough to become champion on its own (the reason is on each "
        f"version); `crm-ml models promote {name} VERSION --reason ...` makes one champion."
        if alias == CHAMPION
        else ""
    )
    raise NotFoundError(
        f"{name} has no alias {alias!r}; its aliases: {held}. "
        f"`crm-ml models list {name}` shows every version (list_versions in Python).{hint}"
    )


def _known_version(client: MlflowClient, name: str, version: str) -> str:
    versions = sorted(
        (int(v.version) for v in client.search_model_versions(f"name = '{name}'")), reverse=True
    )
    if version in map(str, versions):
        return version
    raise NotFoundError(
        f"{name} has no version {version!r}; registered: "
        f"{', '.join(map(str, versions)) or 'none'}. "
        f"`crm-ml models list {name}` shows them (list_versions in Python)."
    )


def resolve_version(ref: str, settings: Settings) -> tuple[str, str]:
    """Return ``(name, version)`` of ``crm-churn@champion``, ``crm-churn/3`` or a models:/ URI.

    Raises
    ------
    NotFoundError
        For an unknown name (listing the registered ones), alias (listing the
        aliases the model has) or version (listing its versions).
    ValidationError
        For a version whose training run did not finish vetting it.
    """
    configure_tracking(settings)
    path = _model_uri(ref).removeprefix("models:/")
    name, at, alias = path.partition("@")
    version = ""
    if not at:
        name, _, version = path.partition("/")
        if not version:
            raise NotFoundError(
                f"Model reference {ref!r} needs an alias or version, e.g. {ref}@champion."
            )
    if "'" in name:
        raise ValidationError(f"A registered model name has no quote in it, got {name!r}.")
    client = MlflowClient()
    _require_registered(client, name, settings)
    version = _alias_version(client, name, alias) if at else _known_version(client, name, version)
    _require_vetted(client, name, version)
    return name, version


def input_columns(model_uri: str) -> list[tuple[str, str]]:
    """Return ``(column, MLflow type name)`` of a logged model's input signature, in order.

    Raises
    ------
    ValidationError
        If the model was logged without a signature.
    """
    from mlflow.models import get_model_info

    signature = get_model_info(model_uri).signature
    if signature is None:
        raise ValidationError(f"{model_uri} has no signature; log it with crm_ml's tracking.")
    return [(str(s.name), str(getattr(s.type, "name", s.type))) for s in signature.inputs.inputs]


def spark_probability_udf(session: Any, model_uri: str) -> Any:
    """Return a Spark UDF of the model's probability, run by the executors' own Python.

    ``env_manager="local"``: nothing is installed at run time (crm_ml and its
    dependencies must be on the executors). MLflow's advice to recreate the
    training environment with conda, and its download bars, are left out:
    the README says how executors are set up.
    """
    import mlflow.pyfunc

    with _artifact_progress_bars_off(), _spark_udf_advice_muted():
        return mlflow.pyfunc.spark_udf(
            session, model_uri, result_type="double", env_manager="local"
        )


class _NoCondaAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'env_manager="local"` does not recreate' not in record.getMessage()


@contextmanager
def _spark_udf_advice_muted() -> Iterator[None]:
    log_of_pyfunc, advice = logging.getLogger("mlflow.pyfunc"), _NoCondaAdvice()
    log_of_pyfunc.addFilter(advice)
    try:
        yield
    finally:
        log_of_pyfunc.removeFilter(advice)


def load_model(ref: str, settings: Settings) -> LoadedModel:
    """Load a registered crm_ml model (e.g. ``crm-churn@champion``) as a fitted estimator.

    Reads the booster and JSON schema straight from the model's artifacts:
    nothing is unpickled, so loading a model runs no code stored with it.
    """
    name, version = resolve_version(ref, settings)
    with tempfile.TemporaryDirectory() as tmp, _artifact_progress_bars_off():
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=tmp
        )
        folder = Path(local) / "artifacts" / _MODEL_DIR
        if not folder.is_dir():
            raise ValidationError(
                f"{name} v{version} was not logged by crm_ml (no {_MODEL_DIR} artifact); "
                "cannot score with it."
            )
        model = load_saved_model(folder)
    return LoadedModel(model, name, version)


@contextmanager
def _artifact_progress_bars_off() -> Iterator[None]:
    """Hide MLflow's "Downloading artifacts" bars, unless the user set the switch.

    MLflow downloads a model's handful of small files to load it, and to check
    the input example when logging it; the bars only clutter notebooks, scripts
    and ``crm-ml score``'s own progress bar. MLflow reads the switch from the
    environment at each download, so it is set for the ``with`` block only.
    """
    if _PROGRESS_BAR_SWITCH in os.environ:
        yield
        return
    os.environ[_PROGRESS_BAR_SWITCH] = "false"
    try:
        yield
    finally:
        os.environ.pop(_PROGRESS_BAR_SWITCH, None)


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version (text) of ``name``; version search results leave aliases out."""
    return {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}


def list_versions(name: str, settings: Settings) -> pd.DataFrame:
    """Return the registered versions of ``name``, newest first.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``version``: ``aliases``, ``registered_utc``, ``backtest_auc``,
        ``test_snapshot``, ``promotion_reason`` (:data:`UNFINISHED_REASON` for a
        version whose training run did not finish), ``label`` (what the model learned;
        empty for versions registered before it was tagged), ``horizon_days``
        (the window it predicts over; empty where unknown), ``labels_until``
        (the end of the latest label window it learned from: its last snapshot
        plus its horizon, NaT where unknown; outcomes after it are news to the
        version), ``run_id`` (the training run: a score row's ``model_name``
        and ``model_version`` lead here).
    """
    if "'" in name:
        raise ValidationError(f"A registered model name has no quote in it, got {name!r}.")
    configure_tracking(settings)
    client = MlflowClient()
    _require_registered(client, name, settings)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        command = _train_command(name) or "crm-ml train churn"
        raise NotFoundError(
            f"No versions of {name!r} are registered in {settings.mlflow_tracking_uri}; "
            f"train one with `{command}` (train_model in Python)."
        )
    aliases = _aliases(client, name)
    rows = [
        {
            "version": int(v.version),
            "aliases": ", ".join(
                sorted(a for a, held_by in aliases.items() if held_by == str(v.version))
            ),
            "registered_utc": pd.Timestamp(v.creation_timestamp, unit="ms"),
            "backtest_auc": float(v.tags.get("backtest_roc_auc", "nan")),
            "test_snapshot": v.tags.get("test_snapshot", ""),
            "promotion_reason": _shown_reason(v.tags),
            "label": v.tags.get("label", ""),
            "horizon_days": v.tags.get("horizon_days", ""),
            "labels_until": _labels_until(client, v.run_id),
            "run_id": v.run_id,
        }
        for v in versions
    ]
    return pd.DataFrame(rows).set_index("version").sort_index(ascending=False)


def _shown_reason(tags: Mapping[str, str]) -> str:
    """Return the version's promotion reason, or that its training run did not finish."""
    return tags.get("promotion_reason", "") if _is_vetted(tags) else UNFINISHED_REASON


def _labels_until(client: MlflowClient, run_id: str | None) -> Any:
    """Return the end of the latest label window a training run learned from, NaT if unknown."""
    try:
        params = client.get_run(run_id).data.params if run_id else {}
    except MlflowException:  # the run was deleted; the version stays listed
        params = {}
    snapshots, horizon = params.get("snapshots", ""), str(params.get("horizon_days", ""))
    if not snapshots or not horizon.isdigit():
        return pd.NaT
    last = max(pd.Timestamp(day) for day in snapshots.split(","))
    return last + pd.Timedelta(days=int(horizon))


def crm_model_names(settings: Settings) -> list[str]:
    """Return the registered names crm_ml trains: churn, propensity, then category models.

    The names always include ``crm-churn`` and ``crm-propensity`` (registered or not).
    """
    configure_tracking(settings)
    found = _registered_names(MlflowClient())
    prefix = REGISTERED_NAMES["propensity"] + "-"
    categories = [n for n in found if n.startswith(prefix) and _train_command(n)]
    return [*REGISTERED_NAMES.values(), *categories]


def set_alias(name: str, version: str, alias: str, settings: Settings, *, reason: str) -> None:
    """Move ``alias`` to ``name`` v``version`` by hand, recording ``reason`` on the version.

    Scoring with ``name@alias`` uses that version from then on. A version
    made champion stops being challenger. Refuses an unknown version, an empty
    reason (the reason is the audit trail), making the champion challenger
    (there would be no champion left to score with), and a version whose
    training run did not finish (never vetted: see :data:`UNFINISHED_REASON`).
    """
    if not reason.strip():
        raise ValidationError("Say why the alias moves (--reason): it is kept on the version.")
    versions = list_versions(name, settings)
    version = str(version)
    if version not in versions.index.astype(str):
        known = ", ".join(versions.index.astype(str))
        raise NotFoundError(f"{name} has no version {version}; registered: {known}.")
    client = MlflowClient()
    _require_vetted(client, name, version)
    aliases = _aliases(client, name)
    if alias == CHALLENGER and aliases.get(CHAMPION) == version:
        raise ValidationError(
            f"{name} v{version} is the champion; promote another version to champion first."
        )
    # One registry call each, in the order that leaves no version with both aliases
    # and the champion either where it was or moved, whichever call a kill stops at.
    # The tags describe the alias, so they follow it; the reason shown by
    # list_versions goes first.
    if alias == CHAMPION and aliases.get(CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "promotion_reason", f"manual: {reason}")
    client.set_model_version_tag(name, version, "promotion", alias)
    _retag_former_holders(client, name)


def _retag_former_holders(client: MlflowClient, name: str) -> None:
    """Rewrite the promotion tags of versions that no longer hold the alias they name.

    Moving an alias (by hand, or to a new version) leaves the version it left
    tagged ``promotion=champion`` with the reason it got it, which contradicts
    the aliases. Its reason becomes "no longer champion (v2 took the alias, when);
    it was made champion because: ..." and ``promotion`` the alias it holds now,
    or ``none``. Run after every alias move; a move killed before it leaves tags
    the next move rewrites. The reason is rewritten once, before ``promotion``,
    so a rewrite killed in between is finished by the next, not nested.
    """
    aliases = _aliases(client, name)
    held_by = {
        version: alias for alias, version in aliases.items() if alias in (CHAMPION, CHALLENGER)
    }
    when = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    for found in client.search_model_versions(f"name = '{name}'"):
        version, claimed = str(found.version), found.tags.get("promotion")
        if claimed not in (CHAMPION, CHALLENGER) or aliases.get(claimed) == version:
            continue
        reason, gone = found.tags.get("promotion_reason", ""), f"no longer {claimed}"
        if not reason.startswith(gone):
            holder = aliases.get(claimed)
            moved = f"v{holder} took the alias" if holder else "the alias was removed"
            history = f"{gone} ({moved}, {when}); it was made {claimed} because: {reason}"
            client.set_model_version_tag(name, version, "promotion_reason", history[:5000])
        client.set_model_version_tag(name, version, "promotion", held_by.get(version, "none"))


def version_tags(name: str, version: str, settings: Settings) -> dict[str, str]:
    """Return the tags of a registered version (promotion, reason, backtest id and AUC)."""
    configure_tracking(settings)
    return dict(MlflowClient().get_model_version(name, version).tags)


__all__ = [
    "REGISTERED_NAMES",
    "UNFINISHED_REASON",
    "CrmPyfuncModel",
    "LoadedModel",
    "RegisteredVersion",
    "configure_tracking",
    "crm_model_names",
    "ensure_experiment",
    "list_versions",
    "load_model",
    "log_training_run",
    "pyfunc_language",
    "registered_name",
    "resolve_version",
    "set_alias",
    "version_tags",
]
