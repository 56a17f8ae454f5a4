"""The import reference: what each file ``crm-ml import`` loads must hold, as a docs page.

``docs/import.md`` is :func:`import_reference_markdown`'s text, rendered from what
the importer itself reads, so that the page cannot drift from it:

- columns, required or optional, types, allowed values, ranges, keys, references
  and rules across columns: :func:`crm_ml.store.validation.table_spec`;
- what a row is, and column comments: the schema's docstrings and ``#:`` comments;
- words mapped to stored values (同意 → granted, 美妆 → beauty): the word tables
  reached from each column's normalizer in :data:`crm_ml.store.normalizers.NORMALIZERS`;
- yes/no words and time stamp formats: :mod:`crm_ml.store.parsing` (each example
  format is put through the parser, so the page says what it really does);
- the load order: :data:`crm_ml.store.validation.IMPORT_TABLES`.

Only what no code states is written by hand, in :mod:`crm_ml.store.reference_data`:
a short note on some columns and one example row per table.

Regenerate the page with ``python -m crm_ml.store.reference`` from the project folder.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FunctionType

import pandas as pd
from sqlalchemy import CheckConstraint
from sqlalchemy.orm import Mapper

from crm_ml.store import parsing, sources
from crm_ml.store.normalizers import NORMALIZERS
from crm_ml.store.reconcile import AUDITED_TABLES
from crm_ml.store.reference_data import COLUMN_NOTES, EXAMPLES, SAMPLE_TIMEZONE, TIMESTAMP_SAMPLES
from crm_ml.store.schema import Base
from crm_ml.store.validation import (
    DATE_COLUMNS,
    IMPORT_TABLES,
    INT32,
    RETURN_COLUMNS,
    RETURNS_HINT,
    Bound,
    ColumnSpec,
    RowRule,
    TableSpec,
    parse_check,
    table_spec,
)

#: Where the page lives, relative to the project folder.
DOCS_PAGE = Path("docs") / "import.md"
REGENERATE = "python -m crm_ml.store.reference"


_KIND_NAMES = {
    "text": "text",
    "int": "whole number",
    "float": "number",
    "bool": "yes/no",
    "timestamp": "time stamp",
    "date": "date",
}

WordMap = dict[str, tuple[str, ...]]


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(rst: str) -> str:
    """Docstring text as Markdown: ``code`` and :role:`target` become `code`."""
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", rst).replace("``", "`")


def _codes(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{v}`" if v else "(blank)" for v in values)


# --------------------------------------------------------------------------- sources of facts


def _mapper(table: str) -> Mapper[object]:
    return next(m for m in Base.registry.mappers if m.class_.__tablename__ == table)


def _docstring(table: str) -> str:
    """Return the schema class's docstring of ``table`` as one Markdown paragraph."""
    doc = inspect.cleandoc(_mapper(table).class_.__doc__ or "")
    return _markdown(" ".join(doc.split()))


def _schema_comments(table: str) -> dict[str, str]:
    """Return the ``#:`` comments above the schema class's columns, by column name."""
    mapper = _mapper(table)
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(mapper.class_).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        if pending and (match := re.match(r"(\w+): Mapped", stripped)):
            column = mapper.columns[match.group(1)].name  # the attribute's column
            comments[column] = _markdown(" ".join(pending))
        pending = []
    return comments


def _code_names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_names(const)


def _as_word_map(value: object) -> WordMap | None:
    """Return a word table as stored value → words, or ``None`` when ``value`` is not one.

    Accepts ``{word: stored}`` (``CONSENT_VALUES``) and ``{stored: (word, ...)}``.
    """
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) for k in value):
        return None
    if all(isinstance(v, str) for v in value.values()):
        grouped: dict[str, list[str]] = {}
        for word, stored in value.items():
            if word != stored:
                grouped.setdefault(stored, []).append(word)
        return {stored: tuple(words) for stored, words in grouped.items()}
    if all(isinstance(v, tuple) and all(isinstance(w, str) for w in v) for v in value.values()):
        return {stored: tuple(w for w in words if w != stored) for stored, words in value.items()}
    return None


def word_maps(normalizer: Callable[..., object]) -> list[WordMap]:
    """Return the word tables a normalizer reads, following the crm_ml functions it calls.

    A normalizer maps words through module-level dictionaries (``CATEGORY_NAMES``,
    ``CONSENT_VALUES``); reading them from the code it runs keeps the page in step
    with every word added to them, and with tables added for other columns.
    """
    found: list[WordMap] = []
    seen: set[int] = set()

    def visit(value: object) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if (words := _as_word_map(value)) is not None:
            found.append(words)
        elif isinstance(value, (tuple, list)):
            for item in value:
                visit(item)
        elif isinstance(value, FunctionType) and value.__module__.startswith("crm_ml."):
            for cell in value.__closure__ or ():
                visit(cell.cell_contents)
            for name in _code_names(value.__code__):
                if name in value.__globals__:
                    visit(value.__globals__[name])

    visit(normalizer)
    return found


def _normalizer_summary(normalizer: Callable[..., object]) -> str:
    """Return the first line of a normalizer's docstring, for the page (``""`` if none)."""
    first = (inspect.getdoc(normalizer) or "").split("\n\n")[0].replace("\n", " ").strip()
    return f"On import: {first[:1].lower()}{first[1:]}" if first else ""


def _check_bounds(table: str) -> dict[str, dict[str, object]]:
    """Column limits stated by the table's simple CHECK constraints."""
    limits: dict[str, dict[str, object]] = {}
    for constraint in Base.metadata.tables[table].constraints:
        if isinstance(constraint, CheckConstraint):
            for column, found in (parse_check(str(constraint.sqltext)) or {}).items():
                limits.setdefault(column, {}).update(found)
    return limits


def timestamp_samples(timezone: str = SAMPLE_TIMEZONE) -> list[tuple[str, str | None]]:
    """Each of :data:`TIMESTAMP_SAMPLES` with the naive UTC time the parser stores, or ``None``."""
    raw = pd.Series(TIMESTAMP_SAMPLES, dtype="str")
    parsed = parsing.parse_timestamp(raw, timezone)
    refused = pd.Series(False, index=raw.index)
    for problem in parsed.problems:
        refused |= problem.mask
    return [
        (text, None if bad or pd.isna(value) else str(pd.Timestamp(value)))
        for text, value, bad in zip(TIMESTAMP_SAMPLES, parsed.values, refused, strict=True)
    ]


# --------------------------------------------------------------------------- page sections


def _contents() -> list[str]:
    lines = ["## Contents", ""]
    lines += [f"- [{title}](#{_anchor(title)})" for title, _ in _general_sections()]
    lines.append("- Tables, in load order:")
    lines += [f"  {n}. [{t}](#{_anchor(t)})" for n, t in enumerate(IMPORT_TABLES, start=1)]
    return [*lines, ""]


def _files() -> list[str]:
    csv = ", ".join(f"`{s}`" for s in sources.CSV_SUFFIXES)
    parquet = ", ".join(f"`{s}`" for s in sources.PARQUET_SUFFIXES)
    declared = ", ".join(f"`{e}`" for e in sources.ENCODINGS)
    return [
        f"`crm-ml import TABLE FILE` loads one file into one table. FILE is a CSV file ({csv}) "
        f"or a Parquet file ({parquet}), or a folder of Parquet part files as "
        "`crm-ml export parquet` writes them (all parts load together, or none).",
        "",
        "- **CSV** is read as UTF-8, with or without a byte-order mark (Excel's "
        '"CSV UTF-8"). A GBK export (Excel\'s plain "CSV" on a Chinese system) needs '
        f"`--encoding gbk`; in Python, `encoding=` takes {declared}. Every value is read as "
        "text, so `000123` stays `000123`. Quote values that hold commas or line breaks.",
        "- **Parquet** keeps its column types: numbers, booleans and time stamps are used as "
        "they are; a time stamp column with a zone is an absolute instant.",
        "- **The header** names the columns exactly as below (lower case, English). There is "
        "no column mapping: rename headers such as 会员编号 to `customer_id` first. A file may "
        "leave out optional columns and list columns in any order; an unknown or repeated "
        "column refuses the file (a misspelt one is refused with the nearest name).",
        "- **Values** are trimmed; an empty or all-blank cell is blank. Allowed values are "
        "matched ignoring case and stored in lower case (`Online` → `online`). Yes/no columns "
        f"read {_codes(list(parsing.TRUE_WORDS))} as yes and "
        f"{_codes(list(parsing.FALSE_WORDS))} as no. Numbers are digits with an optional "
        "decimal point (`199.5`); thousands separators, currency signs and `N/A` are refused.",
        "- `crm-ml import cdnow FILE` loads the public CDNOW sample into `customer` and "
        "`orders`; it is the one import that takes another layout.",
        "",
    ]


def _timestamps() -> list[str]:
    dates = ", ".join(f"`{table}.{column}`" for table, column in sorted(DATE_COLUMNS))
    lines = [
        f"Time stamps are written `{parsing.TIMESTAMP_FORMAT}`. A time stamp without a zone is "
        "wall-clock time in `--timezone` (by default the `CRM_ML_TIMEZONE` setting, "
        "Asia/Shanghai) and is stored as UTC; one with an offset (`+08:00`, `Z`) is converted "
        "with it. A time that does not exist or is ambiguous in the zone (a daylight-saving "
        f"gap) is refused. Dates ({dates}) are calendar days: never shifted by a zone, and "
        "a time of day is refused. Time stamps after the import's `--as-of` (by default, now) "
        "are refused, except those that may lie in the future (marked so below).",
        "",
        f"How the importer reads some common ways of writing 7 March 2025, 14:05 in "
        f"{SAMPLE_TIMEZONE} (tried on the parser when this page was generated):",
        "",
        "| written | stored (UTC) |",
        "|---|---|",
    ]
    for text, stored in timestamp_samples():
        lines.append(f"| `{text}` | {f'`{stored}`' if stored else 'refused'} |")
    return [*lines, ""]


def _reimport() -> list[str]:
    audited = _codes(sorted(AUDITED_TABLES))
    return [
        "Loading the same file twice changes nothing. Tables differ in what a later file "
        "may change:",
        "",
        "- **Dimension tables** (their sections say so) update a stored row whose key comes "
        f"again with other values; for {audited}, each changed column is recorded in "
        "`customer_change`.",
        "- **A blank cell erases the stored value**: it sets the column to blank (or to its "
        f"default, e.g. `is_member` to no), and for {audited} the change is audited. "
        "**A column left out of the file keeps the stored values.** To update some columns "
        "only, import a file with the key and those columns.",
        "- **Ledger and fact tables are append-only**: a row given again as stored changes "
        "nothing, a changed one is refused. The exceptions are the columns that arrive later "
        "by design (listed in each section): a later file may fill each in once where the "
        "store has none. Once filled, leaving the column out is fine, but a blank cell in it "
        "is a change and is refused.",
        "- **Erased customers** stay erased: rows that would put back an erased customer's "
        "profile, identities, custom field values or consent grants are skipped with a "
        "warning.",
        "",
    ]


def _returns() -> list[str]:
    columns = [f"`{t}.{c}`" for t, cs in RETURN_COLUMNS.items() for c in cs]
    hint = RETURNS_HINT.lstrip("; ")
    return [
        f"Negative sales amounts ({', '.join(columns)}) are refused: {hint}. A refund may "
        "be partial (up to the line `amount`) and arrives when it happens, so the line is "
        "loaded first and given again later with the refund. Features, tags and scores "
        "value an order net of the refunds made before the date they look at.",
        "",
        "Guest orders (散客: no `customer_id`) are refused, since every order belongs to a "
        "customer: filter them out of the export, or register the buyer as a customer first.",
        "",
    ]


def _rejects() -> list[str]:
    return [
        "Every row is checked before anything is written. Each problem becomes a row of a "
        "reject report next to the file (`orders.rejects.csv` for `orders.csv`; or in "
        "`--reject-dir`), with the "
        "columns `file, line, column, rule, value, message`; Excel opens it correctly. By "
        "default one rejected row refuses the whole file and nothing is written. "
        "`--max-reject-rate 0.01` loads the valid rows when at most 1% of the rows are "
        "rejected (it is a share from 0 to 1, not a percentage). Problems that reject no row "
        "(an unknown category, an unrecognised consent answer, an owner id new to the store) "
        "are printed as warnings.",
        "",
    ]


def _load_order() -> list[str]:
    order = " ".join(IMPORT_TABLES)
    return [
        "Tables refer to each other (an order names its customer and store), and a "
        "reference must name a row already in the store, or the row is refused "
        '("import customer first"). This order satisfies every reference; each table\'s '
        "section lists the tables it needs. The last three tables are a store's own "
        "history, imported when a store is moved with `crm-ml export parquet`.",
        "",
        "```",
        order,
        "```",
        "",
    ]


def _general_sections() -> list[tuple[str, Callable[[], list[str]]]]:
    return [
        ("Files", _files),
        ("Time stamps", _timestamps),
        ("Re-importing: blank cells and absent columns", _reimport),
        ("Returns and guest orders", _returns),
        ("Rejects and --max-reject-rate", _rejects),
        ("Load order", _load_order),
    ]


# --------------------------------------------------------------------------- one table


def _needs(spec: TableSpec) -> list[str]:
    """Return the tables to load before ``spec``'s: its references, itself excluded."""
    return list(
        dict.fromkeys(r.target_table for r in spec.references if r.target_table != spec.name)
    )


def _required(column: ColumnSpec) -> str:
    if column.required:
        return "yes"
    if column.default is None:
        return "no"
    shown = str(column.default).lower() if isinstance(column.default, bool) else column.default
    return f"no (blank: `{shown}`)"


def _type(column: ColumnSpec) -> str:
    name = _KIND_NAMES[column.kind]
    return (
        f"{name} (≤ {column.max_length})" if column.max_length and column.kind == "text" else name
    )


def _bound(bound: object, lower: bool) -> str | None:
    if not isinstance(bound, Bound):
        return None
    sign = (">" if lower else "<") + ("=" if bound.inclusive else "")
    return f"{sign.replace('>=', '≥').replace('<=', '≤')} {bound.value:g}"


def _limits(spec: TableSpec, column: ColumnSpec) -> str:
    if column.allowed is not None:
        return _codes(list(column.allowed))
    checked = _check_bounds(spec.name).get(column.name, {})
    # Every int column has the 32-bit range; only a CHECK's narrower limit is worth saying.
    lower = None if column.lower == Bound(INT32[0], True) else column.lower
    upper = None if column.upper == Bound(INT32[1], True) else column.upper
    return " and ".join(
        b
        for b in (
            _bound(lower or checked.get("lower"), True),
            _bound(upper or checked.get("upper"), False),
        )
        if b
    )


def _word_notes(spec: TableSpec, column: str) -> list[str]:
    normalizer = NORMALIZERS.get(spec.name, {}).get(column)
    if normalizer is None:
        return []
    notes = [_markdown(s)] if (s := _normalizer_summary(normalizer)) else []
    for words in word_maps(normalizer):
        mapped = "; ".join(f"{_codes(list(w))} → `{v}`" for v, w in words.items() if w)
        if mapped:
            notes.append(f"Words read: {mapped}.")
    return notes


def _column_notes(spec: TableSpec, column: ColumnSpec, comments: dict[str, str]) -> str:
    notes = []
    if column.name in spec.key:
        notes.append("Key." if len(spec.key) == 1 else "Part of the key.")
    if column.name in spec.unique:
        notes.append("Unique.")
    for ref in spec.references:
        if ref.column == column.name:
            notes.append(f"Refers to `{ref.target_table}.{ref.target_column}`.")
    for text in (comments.get(column.name), COLUMN_NOTES.get((spec.name, column.name))):
        if text:
            notes.append(text)
    notes += _word_notes(spec, column.name)
    if column.name in spec.filled_later:
        notes.append("May arrive later: a later file fills it in once.")
    if column.future_ok:
        notes.append("May lie in the future.")
    if column.kind == "date":
        notes.append("A calendar day; not shifted by a zone.")
    return " ".join(notes)


def _columns_table(spec: TableSpec) -> list[str]:
    comments = _schema_comments(spec.name)
    lines = [
        "| column | required | type | allowed values | notes |",
        "|---|---|---|---|---|",
    ]
    for column in spec.columns:
        cells = [
            f"`{column.name}`",
            _required(column),
            _type(column),
            _limits(spec, column),
            _column_notes(spec, column, comments),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _rule_text(rule: RowRule) -> str:
    return rule.message.replace("{value}", "<value>")


def _row_rules(spec: TableSpec) -> list[str]:
    returns = RETURN_COLUMNS.get(spec.name, ())
    rules = [r for r in spec.row_rules if not (r.name == "range" and r.column in returns)]
    lines = []
    if returns:
        lines.append(
            f"- {_codes(list(returns))}: a value under the limit above is refused; a return "
            "is never a negative row (see *Returns*)."
        )
    lines += [f'- `{r.column}`: refused when "{_rule_text(r)}".' for r in rules]
    return ["Rules across columns:", "", *lines, ""] if lines else []


def example_row(spec: TableSpec) -> dict[str, str]:
    """Return the table's example row, every column in table order (one it lacks: blank)."""
    given = EXAMPLES.get(spec.name, {})
    return {c.name: given.get(c.name, "") for c in spec.columns}


def _example(spec: TableSpec) -> list[str]:
    row = example_row(spec)
    quoted = [f'"{v}"' if "," in v else v for v in row.values()]
    return ["Example:", "", "```csv", ",".join(row), ",".join(quoted), "```", ""]


def _summary(spec: TableSpec) -> list[str]:
    key = " + ".join(f"`{c}`" for c in spec.key)
    if spec.kind == "dimension":
        kind = "dimension: a row whose key is stored already updates it (see *Re-importing*)"
    elif spec.filled_later:
        kind = f"append-only, except {_codes(list(spec.filled_later))}, filled in later once"
    else:
        kind = "append-only: a stored row is never changed"
    needs = _needs(spec)
    return [
        f"- **Key:** {key}",
        f"- **Re-import:** {kind}",
        f"- **Load first:** {_codes(needs) if needs else 'nothing'}",
        "",
    ]


def _table_section(name: str) -> list[str]:
    spec = table_spec(name)
    lines = [f"## {name}", "", _docstring(name), ""]
    lines += _summary(spec)
    lines += _columns_table(spec)
    lines.append("")
    lines += _row_rules(spec)
    lines += _example(spec)
    return lines


# --------------------------------------------------------------------------- the page


def import_reference_markdown() -> str:
    """Return the import reference as a Markdown page (``docs/import.md`` is this text)."""
    lines = [
        "# Import files",
        "",
        f"Generated by `{REGENERATE}` from the importer's own table specs "
        "(`crm_ml/store/reference.py`); do not edit by hand.",
        "",
        "What each file of `crm-ml import TABLE FILE` (and `import_file`, `import_frame` in "
        "Python) must hold: the columns of each table, which are required, their types and "
        "allowed values, and the order in which to load the tables.",
        "",
    ]
    lines += _contents()
    for title, section in _general_sections():
        lines += [f"## {title}", "", *section()]
    for name in IMPORT_TABLES:
        lines += _table_section(name)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_import_reference(path: str | Path = DOCS_PAGE) -> Path:
    """Write :func:`import_reference_markdown` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(import_reference_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover - the regenerate command
    written = write_import_reference(sys.argv[1] if len(sys.argv) > 1 else DOCS_PAGE)
    sys.stdout.write(f"wrote {written}\n")
