"""Report parameters: what a notebook declares, ``-p`` values checked against it, list inputs.

A report's notebook declares its parameters, with defaults, in the cell tagged
``parameters``. Values given on the command line arrive as text; each is
converted to the type of its default before anything runs, so a typo'd name or
a value that does not parse is refused up front instead of failing in a cell
(or, for an unknown name, being ignored by papermill). A probability threshold
(a number named ``*_threshold`` or after a probability field, ``p_churn``, whose
default lies in 0–1) must lie in 0–1 too: ``60`` for 60 % is refused, naming 0.6.

What a report's list exports need beyond its parameters (the export secret from
the environment, stored segment names) is checked by :func:`check_report_exports`,
which an exporting notebook calls in its setup cell: a bad channel then fails
the run before it saves a segment, takes a snapshot or applies tags. Under
``crm-ml report run`` (:func:`in_report_run`) a missing export secret fails it
too; a notebook opened in JupyterLab without one runs the analysis and writes no
list, with :data:`NO_SECRET_NOTE` saying how to write them. Who a report's
writes are recorded under is :func:`report_actor`: the report under a report
run, the person running the notebook otherwise.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import getpass
import json
import logging
import math
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_ml.errors import ValidationError

if TYPE_CHECKING:
    from crm_ml.store.connection import Store

log = logging.getLogger(__name__)

_SECRET_NAME = re.compile(r"pass(word)?|secret|token|api_?key|credential", re.IGNORECASE)
_LITERALS = (str, int, float, bool, type(None))
#: Parameters every run sets itself; ``-p`` cannot override them.
RESERVED_PARAMETERS = ("as_of", "output_dir")
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
#: The folder under the reports folder where :func:`crm_ml.reporting.run_report` runs a
#: notebook: its ``output_dir`` is ``<reports>/_staging/<run>/<report>``.
STAGING_DIR = "_staging"
#: What a notebook run outside ``crm-ml report run`` without the export secret says.
NO_SECRET_NOTE = (
    "CRM_ML_EXPORT_SECRET is not set, so this session writes no list (their 匿名编号 are made "
    "with that key); the analysis runs. To write the lists, start JupyterLab again with the "
    "key they are exported with set, e.g. after `crm-ml demo`, the demo's key: "
    "`export CRM_ML_EXPORT_SECRET=$(cat data/demo_export_secret)`. `crm-ml report run` "
    "refuses to start without it."
)


def check_parameters(parameters: dict[str, Any]) -> None:
    """Refuse parameters that are not literals, or that look like secrets."""
    for key, value in parameters.items():
        if _SECRET_NAME.search(key):
            raise ValidationError(
                f"Report parameter {key!r} looks like a secret. Papermill writes parameters into "
                "the published notebook; set secrets in the environment instead."
            )
        items = value if isinstance(value, list | tuple) else [value]
        if not all(isinstance(item, _LITERALS) for item in items):
            raise ValidationError(
                f"Report parameter {key!r} must be a literal (text, number, bool or a list of "
                f"them), got {type(value).__name__}."
            )


def notebook_parameters(path: Path) -> dict[str, object]:
    """Return the names and default values of the notebook's ``parameters`` cell.

    The cell is read with :mod:`ast`, not ``papermill.inspect_notebook``: papermill
    skips lines it cannot parse (a list followed by a comment) and returns defaults
    as source text. A default that is not a literal maps to ``None`` (any value goes).

    Raises
    ------
    ValidationError
        If the parameters cell is not valid Python.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return {}
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise ValidationError(
            f"The parameters cell of {path} is not valid Python (line {exc.lineno}: {exc.msg}); "
            "it must hold assignments of literals only."
        ) from exc
    defaults: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    defaults[target.id] = _literal(node.value)
    return defaults


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def coerce_parameters(
    report: str, declared: dict[str, object], given: dict[str, Any]
) -> dict[str, Any]:
    """Return ``given`` converted to the types of the notebook's defaults.

    Text (as the CLI passes it) is parsed: ``90`` for a whole number, ``0.5``,
    ``true``/``false``, ``2024-10-01`` for a date, JSON for a list. Other values
    must already have the default's type.

    Raises
    ------
    ValidationError
        For a parameter the notebook does not declare, one the run sets itself,
        a value that does not parse, or a probability threshold outside 0–1;
        nothing has run.
    """
    converted = {}
    for key, value in given.items():
        if key in RESERVED_PARAMETERS:
            raise ValidationError(
                f"Report parameter {key!r} is set by the run itself: give the date with "
                "--as-of (as_of=...); lists are written to the report's folder."
            )
        if key not in declared:
            raise _unknown_parameter(report, key, declared)
        try:
            converted[key] = _coerce(value, declared[key])
        except ValueError as exc:
            raise ValidationError(
                f"Report {report} parameter {key!r} expects {exc} (its default is "
                f"{declared[key]!r}), got {value!r}. Nothing was run."
            ) from None
        _check_probability(report, key, declared[key], converted[key])
    return converted


def _check_probability(report: str, key: str, default: object, value: object) -> None:
    """Refuse a probability threshold outside 0–1, naming the value probably meant."""
    from crm_ml.rules.vocabulary import PROBABILITY_FIELDS, probability_hint

    named = key.endswith("_threshold") or key in PROBABILITY_FIELDS
    if not (named and isinstance(default, float) and 0 <= default <= 1):
        return  # not a probability: revenue_threshold = 1000.0, say
    if isinstance(value, float) and not 0 <= value <= 1:  # float: the default's type
        raise ValidationError(
            f"Report {report} parameter {key!r} is a probability, got {value:g}: "
            f"{probability_hint(value)}. Nothing was run."
        )


def _unknown_parameter(report: str, key: str, declared: dict[str, object]) -> ValidationError:
    settable = {k: v for k, v in declared.items() if k not in RESERVED_PARAMETERS}
    close = difflib.get_close_matches(key, list(settable), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(f"{k}={v!r}" for k, v in settable.items()) or "none besides as_of"
    return ValidationError(
        f"Report {report} has no parameter {key!r}.{hint} Its parameters (with defaults): "
        f"{listed}. Nothing was run."
    )


def _coerce(value: object, default: object) -> object:
    """Return ``value`` as the type of ``default``; raise ValueError naming what is expected."""
    if isinstance(default, bool):
        return _as_bool(value)
    if isinstance(default, int):
        return _as_int(value)
    if isinstance(default, float):
        return _as_float(value)
    if isinstance(default, str):
        return _as_date_text(value) if _is_iso_date(default) else _as_text(value)
    if isinstance(default, list | tuple):
        return _as_list(value)
    return value  # None or a non-literal default: the notebook accepts anything


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("true or false")


def _as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("a whole number")


def _as_float(value: object) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not math.isfinite(number):
        raise ValueError("a number")
    return float(number)


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _as_date_text(value: object) -> str:
    """Dates travel as ISO text: a parameters cell holds literals only."""
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, str) and _is_iso_date(value.strip()):
        return f"{date.fromisoformat(value.strip()):%Y-%m-%d}"
    raise ValueError("a date as YYYY-MM-DD")


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("text")


def _as_list(value: object) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    raise ValueError('a list in JSON such as ["a", "b"]')


def in_report_run(out_dir: str | Path) -> bool:
    """Tell whether a notebook runs under ``crm-ml report run``, from its ``output_dir``.

    :func:`crm_ml.reporting.run_report` always sets ``output_dir`` to the run's
    staging folder, ``<reports>/_staging/<run>/<report>``; a notebook opened in
    JupyterLab keeps its parameters cell's default, ``lists``.
    """
    folder = Path(out_dir)
    return folder.is_absolute() and folder.parent.parent.name == STAGING_DIR


def report_actor(given: str | None, *, report: str, out_dir: str | Path) -> str:
    """Return who a report notebook's writes are recorded under (segments, tags, export_log).

    Parameters
    ----------
    given : str or None
        ``CRM_ML_ACTOR`` from the environment; used when set.
    report : str
        The notebook's name: ``<report> report`` is the actor of a report run.
    out_dir : str or pathlib.Path
        The notebook's ``output_dir``: outside a report run (:func:`in_report_run`)
        a person runs the notebook, and the audit trail names them by their
        login name (``<report> report`` if the system has none).
    """
    if given and given.strip():
        return given.strip()
    if not in_report_run(out_dir):
        with contextlib.suppress(KeyError, OSError):  # no user name in some containers
            return getpass.getuser()
    return f"{report} report"


def check_report_exports(
    store: Store,
    segments: Sequence[str] = (),
    *,
    channel: str,
    purpose: str,
    secret: str | bytes | None,
    actor: str,
    language: str,
    out_dir: str | Path,
) -> list[str]:
    """Check what a report's list exports need, before the report writes to the store.

    A report saves segments, takes snapshots and applies tags before its
    export cell; if only the export found a bad channel or a missing secret,
    the failed run would have changed the store all the same. Call this in the
    notebook's setup cell with the arguments the exports will get. It reads the
    store (segment names) and writes nothing.

    A missing secret is refused under ``crm-ml report run`` only
    (:func:`in_report_run`): a notebook opened in JupyterLab without it runs
    its analysis, writes no list, and :data:`NO_SECRET_NOTE` is logged at
    WARNING (shown under the setup cell).

    Parameters
    ----------
    store : Store
    segments : sequence of str
        Saved segments or template names the report exports; none for a report
        that saves its own segment.
    channel, purpose, secret, actor, language, out_dir
        As :func:`crm_ml.segments.export_list` takes them; ``secret`` from
        ``CRM_ML_EXPORT_SECRET``.

    Returns
    -------
    list of str
        The stored names ``segments`` stand for (see
        :func:`crm_ml.segments.check_segment_names`; a template may save under
        another name); empty without segments.

    Raises
    ------
    ValidationError
        For an unknown channel, purpose or language, or no actor.
    ConfigError
        Without an export secret under a report run, with one too short, or
        when ``out_dir`` cannot be a folder.
    NotFoundError
        For a name that is neither a saved segment nor a template.
    """
    from crm_ml.outputs import check_output_folder
    from crm_ml.segments.definitions import check_segment_names
    from crm_ml.segments.headers import list_headers
    from crm_ml.segments.lists import check_channel
    from crm_ml.segments.masking import require_secret

    check_channel(channel, purpose)
    list_headers(language)
    if secret or in_report_run(out_dir):
        require_secret(secret)
    else:
        log.warning("%s", NO_SECRET_NOTE)
    if not actor or not str(actor).strip():
        raise ValidationError(
            "A report's lists need an actor (who exports) for the export log: set "
            "CRM_ML_ACTOR to a name, or leave it unset for the report's own."
        )
    check_output_folder(Path(out_dir), what="the list folder")
    return check_segment_names(store, segments) if segments else []
