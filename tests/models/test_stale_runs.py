"""Crash safety of MLflow bookkeeping: runs of killed trainings, and moving an alias by hand.

A training process killed outright cannot end its MLflow run: the next training
run of the model ends it as KILLED when its process is known gone, and leaves
every run it cannot judge alone. Promoting by hand takes several registry
calls; a kill between any two must leave no version with both aliases.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from project_settings import project_settings

from crm_ml.config import Settings
from crm_ml.models.training import train_model

from .synthetic import TINY, make_training_frame

mlflow = pytest.importorskip("mlflow")
tracking = pytest.importorskip("crm_ml.models.tracking")

TESTS = Path(__file__).resolve().parents[1]

#: A training process as far as MLflow sees it: tracking set up as crm_ml does,
#: a run started with crm_ml's process tags, then nothing until it is killed.
CHILD = """
import sys, time
from pathlib import Path

import mlflow
from project_settings import project_settings

from crm_ml.models import tracking

settings = project_settings(Path(sys.argv[1]))
experiment_id = tracking.ensure_experiment("crm-churn", settings)
run = mlflow.start_run(experiment_id=experiment_id, tags=tracking._process_tags())
print(run.info.run_id, flush=True)
time.sleep(600)
"""

#: A pid no process has: above Linux's largest pid_max (2**22) and macOS's 99,999.
GONE_PID = 2**22 + 1

pytestmark = pytest.mark.skipif(
    os.name != "posix", reason="a process is looked up with os.kill(pid, 0), POSIX only"
)


class Killed(Exception):
    """Stands for the process dying at the patched registry call."""


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_training_frame(n=400)


def _run_killed_in_child(root: Path) -> tuple[str, int]:
    """Start a training run in a child process, kill it with SIGKILL; return run id and pid."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path[1:]])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.stdout is not None
        child.stdout.close()
    assert run_id, "the child process did not start its run"
    return run_id, child.pid


def _status(run_id: str) -> str:
    return str(mlflow.MlflowClient().get_run(run_id).info.status)


def _tags(run_id: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_run(run_id).data.tags)


def test_training_ends_the_runs_of_killed_processes_and_no_others(
    tmp_path: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    settings = project_settings(tmp_path)
    dead_run, dead_pid = _run_killed_in_child(tmp_path)
    experiment_id = tracking.ensure_experiment("crm-churn", settings)
    client = mlflow.MlflowClient()  # after the line above, which points MLflow at the project
    live_run = client.create_run(experiment_id, tags=tracking._process_tags()).info.run_id
    elsewhere = {**tracking._process_tags(), "crm_ml.host": "another-host", "crm_ml.pid": "1"}
    remote_run = client.create_run(experiment_id, tags=elsewhere).info.run_id
    untagged_run = client.create_run(experiment_id).info.run_id
    assert _status(dead_run) == "RUNNING"

    with caplog.at_level(logging.INFO, logger="crm_ml.models.tracking"):
        trained = train_model("churn", frame, settings, horizon_days=90, model_params=TINY)

    assert _status(dead_run) == "KILLED"
    assert _tags(dead_run)["crm_ml.ended_by"] == (
        f"crm_ml training: its process {dead_pid} on {_tags(dead_run)['crm_ml.host']} "
        "was no longer running"
    )
    for kept in (live_run, remote_run, untagged_run):
        assert _status(kept) == "RUNNING" and "crm_ml.ended_by" not in _tags(kept)
    assert "Ended 1 earlier crm-churn training run(s) as KILLED" in caplog.text
    assert trained.registered is not None
    own = trained.registered.run_id
    assert _status(own) == "FINISHED" and _tags(own)["crm_ml.pid"] == str(os.getpid())


def test_a_registry_refusing_to_end_a_run_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    experiment_id = tracking.ensure_experiment("crm-churn", project_settings(tmp_path))
    gone = {**tracking._process_tags(), "crm_ml.pid": str(GONE_PID)}
    dead_run = mlflow.MlflowClient().create_run(experiment_id, tags=gone).info.run_id

    def refuse(*args: object, **kwargs: object) -> None:
        raise mlflow.exceptions.MlflowException("Permission denied")

    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", refuse)
    with caplog.at_level(logging.WARNING, logger="crm_ml.models.tracking"):
        tracking._close_abandoned_runs(experiment_id, "crm-churn")
    assert "Could not end crm-churn's earlier training runs" in caplog.text
    assert "Permission denied" in caplog.text
    assert _status(dead_run) == "RUNNING"
    monkeypatch.undo()
    tracking._close_abandoned_runs(experiment_id, "crm-churn")
    assert _status(dead_run) == "KILLED"


@pytest.fixture(scope="module")
def champion_and_challenger(
    tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame
) -> Settings:
    """A registry where v1 is champion and v2 challenger (it is a weaker model)."""
    settings = project_settings(tmp_path_factory.mktemp("promote"))
    weak = {**TINY, "n_estimators": 3, "num_leaves": 2}
    for params, alias in ((TINY, "champion"), (weak, "challenger")):
        trained = train_model("churn", frame, settings, horizon_days=90, model_params=params)
        assert trained.registered is not None and trained.registered.alias == alias
    return settings


def _aliases(settings: Settings) -> dict[int, str]:
    listed = tracking.list_versions("crm-churn", settings)["aliases"]
    return {int(v): str(a) for v, a in listed.items()}


def _killed_at(monkeypatch: pytest.MonkeyPatch, method: str, *, after: int) -> None:
    """Make ``MlflowClient.<method>`` work ``after`` times, then die as a kill would."""
    real, calls = getattr(mlflow.MlflowClient, method), []

    def dying(self: object, *args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) > after:
            raise Killed
        return real(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, method, dying)


MOVED = {2: "champion", 1: ""}


@pytest.mark.parametrize(
    ("method", "after", "left"),
    [
        ("delete_registered_model_alias", 0, {2: "challenger", 1: "champion"}),
        ("set_registered_model_alias", 0, {2: "", 1: "champion"}),
        ("set_model_version_tag", 0, MOVED),
        ("set_model_version_tag", 1, MOVED),
    ],
)
def test_promoting_killed_between_registry_calls_leaves_no_version_with_both_aliases(
    champion_and_challenger: Settings,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    after: int,
    left: dict[int, str],
) -> None:
    settings = champion_and_challenger
    tracking.configure_tracking(settings)
    client = mlflow.MlflowClient()
    # v1 champion, v2 challenger, as the fixture left them (an earlier case may have moved them).
    client.set_registered_model_alias("crm-churn", "champion", "1")
    client.set_registered_model_alias("crm-churn", "challenger", "2")
    with monkeypatch.context() as patch:
        _killed_at(patch, method, after=after)
        with pytest.raises(Killed):
            tracking.set_alias("crm-churn", "2", "champion", settings, reason="roll-back test")
    # The champion has not moved or has moved whole; v2 never holds both aliases.
    assert _aliases(settings) == left

    tracking.set_alias("crm-churn", "2", "champion", settings, reason="roll-back test")
    assert _aliases(settings) == MOVED
    tags = tracking.version_tags("crm-churn", "2", settings)
    assert (tags["promotion"], tags["promotion_reason"]) == ("champion", "manual: roll-back test")
