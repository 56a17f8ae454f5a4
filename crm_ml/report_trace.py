"""The MLflow training runs a report started, so its executed notebook can be attached to them.

A model trained by a report (``model_training``) is the notebook's work: the
training set it printed, the backtest tables and figures, the cell that
trained it. :func:`crm_ml.reporting.run_report` names a file in its staging
folder in the kernel's environment; each training run the kernel starts writes
its id there and is tagged with the report (:func:`note_training_run`). When
the notebook has run, the report run attaches it (and its page, if rendered)
to those runs under ``report/``, published or failed, so a registered version
leads to the notebook that trained it.

A report about one customer (``customer_360``) is never traced: its notebook is
personal data, and a retention purge does not reach MLflow.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

#: The file, in a report run's staging folder, that lists the training runs its kernel started.
RUNS_FILE = "MLFLOW_RUNS"
RUNS_FILE_ENV = "CRM_ML_REPORT_RUNS_FILE"
REPORT_ENV = "CRM_ML_REPORT"
#: The run tag naming the report (``model_training as of 2026-11-25``).
REPORT_TAG = "crm_ml_report"


def report_environment(staging: Path, report: str, day: date) -> dict[str, str]:
    """Return what a report run adds to its kernel's environment to trace its training runs."""
    return {RUNS_FILE_ENV: str(staging / RUNS_FILE), REPORT_ENV: f"{report} as of {day:%Y-%m-%d}"}


def note_training_run(run_id: str) -> dict[str, str]:
    """Record ``run_id`` for the report this process runs in; return the run's tags for it.

    Outside a report run (a notebook in JupyterLab, ``crm-ml train``) nothing is
    recorded and there are no tags.
    """
    runs_file = os.environ.get(RUNS_FILE_ENV)
    if not runs_file:
        return {}
    with open(runs_file, "a", encoding="utf-8") as runs:
        runs.write(f"{run_id}\n")
    return {REPORT_TAG: os.environ.get(REPORT_ENV, "")}


def training_runs(staging: Path) -> list[str]:
    """Return the ids of the training runs the report staged in ``staging`` started, in order."""
    try:
        text = (staging / RUNS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line]
