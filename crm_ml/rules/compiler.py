"""The rule language shared by tags and segments: parse, check, evaluate.

A rule is one Python-like expression, for example::

    recency_days > 60 and revenue_365d >= 2000 and tag("vip") and not consent("sms", "marketing")

It is parsed with :mod:`ast` (never ``eval``) and only an allow-list of nodes is
accepted: field names from a :class:`~crm_ml.rules.vocabulary.Vocabulary`,
literal numbers, strings and booleans, ``and``/``or``/``not``, comparisons
(``< <= > >= == !=``, ``in``/``not in`` a literal list), ``+ - * /`` on numbers,
and the functions listed in :data:`FUNCTIONS`. Rules are evaluated in pandas
over a frame of features, scores, tag and consent flags, so no rule text ever
reaches SQL; the store is only read with bound parameters.

Missing values make a comparison false (``recency_days > 60`` is false for a
customer who never bought), and ``not`` of a false comparison is true. A
probability field (:data:`~crm_ml.rules.vocabulary.PROBABILITY_FIELDS`:
``p_churn``, ``p_purchase``) compared with a number outside 0–1 is refused, and
``p_churn >= 60`` is told to write 0.6.

The checked :class:`Rule` and the :class:`RuleContext` it is evaluated over
live in :mod:`crm_ml.rules.evaluation` and are re-exported here.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crm_ml.errors import RuleError
from crm_ml.rules.evaluation import Evaluator, Rule, RuleContext, _known, _to_bool
from crm_ml.rules.evaluation import _like_regex as _like_regex  # re-exported for functions.py
from crm_ml.rules.vocabulary import (
    PROBABILITY_FIELDS,
    ValueType,
    Vocabulary,
    nearest,
    probability_hint,
)

#: Longest rule text accepted, and most syntax nodes in one rule.
MAX_RULE_CHARS = 4000
MAX_NODES = 400

#: The functions a rule may call, with their signatures as shown in messages.
FUNCTIONS = {
    "tag": 'tag("name") -> bool: the customer has the tag at as_of',
    "consent": 'consent("channel", "purpose") -> bool: consent granted at as_of',
    "between": "between(x, low, high) -> bool: low <= x <= high",
    "missing": "missing(field) -> bool: the field has no value",
    "contains": 'contains(text_field, "text") -> bool: literal substring',
    "startswith": 'startswith(text_field, "text") -> bool',
    "like": 'like(text_field, "pattern") -> bool: % any run, _ one character, \\ escapes',
    "percentile": "percentile(x[, among]) -> number in (0, 1]: rank among the customers "
    "evaluated (or those where the condition among holds)",
    "quintile": "quintile(x[, among]) -> number 1..5: 5 is the highest fifth",
}

_COMPARE = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
_ARITHMETIC = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}
_ALLOWED = "and, or, not, < <= > >= == !=, in / not in [..], + - * /, " + ", ".join(FUNCTIONS)


@dataclass
class _Node:
    kind: ValueType
    fn: Evaluator
    constant: bool = False


class _Compiler:
    """Walk a parsed rule, checking names and types and building an evaluator."""

    def __init__(self, text: str, vocabulary: Vocabulary) -> None:
        self.text = text
        self.vocab = vocabulary
        self.fields: set[str] = set()
        self.tags: set[str] = set()
        self.consents: set[tuple[str, str]] = set()

    def fail(self, node: ast.AST | None, message: str) -> RuleError:
        where = (
            f" (at column {node.col_offset + 1})"
            if node is not None and hasattr(node, "col_offset")
            else ""
        )
        return RuleError(f"Rule {self.text!r} was rejected: {message.rstrip('.')}{where}.")

    def visit(self, node: ast.AST) -> _Node:
        handlers: dict[type, Callable[[Any], _Node]] = {
            ast.BoolOp: self.bool_op,
            ast.UnaryOp: self.unary_op,
            ast.Compare: self.compare,
            ast.BinOp: self.bin_op,
            ast.Name: self.name,
            ast.Constant: self.constant,
            ast.Call: self.call,
        }
        handler = handlers.get(type(node))
        if handler is None:
            what = type(node).__name__
            raise self.fail(node, f"{what} is not allowed in a rule; allowed: {_ALLOWED}")
        return handler(node)

    def expect(self, node: ast.AST, kind: ValueType, role: str) -> _Node:
        compiled = self.visit(node)
        if compiled.kind != kind:
            raise self.fail(
                node, f"{role} must be {kind}, but {ast.unparse(node)!r} is {compiled.kind}"
            )
        return compiled

    def bool_op(self, node: ast.BoolOp) -> _Node:
        parts = [self.expect(v, "bool", "each side of and/or").fn for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_

        def run(ctx: RuleContext) -> Any:
            result = _to_bool(parts[0](ctx))
            for part in parts[1:]:
                result = combine(result, _to_bool(part(ctx)))
            return result

        return _Node("bool", run)

    def unary_op(self, node: ast.UnaryOp) -> _Node:
        if isinstance(node.op, ast.Not):
            inner = self.expect(node.operand, "bool", "the operand of not").fn

            def negate(ctx: RuleContext) -> Any:
                value = _to_bool(inner(ctx))
                return ~value if isinstance(value, pd.Series) else not value

            return _Node("bool", negate)
        if isinstance(node.op, ast.USub):
            number = self.expect(node.operand, "number", "the operand of -")
            return _Node("number", lambda ctx: -number.fn(ctx), number.constant)
        raise self.fail(
            node, f"operator {type(node.op).__name__} is not allowed; allowed: {_ALLOWED}"
        )

    def bin_op(self, node: ast.BinOp) -> _Node:
        if type(node.op) not in _ARITHMETIC:
            raise self.fail(
                node,
                f"operator {type(node.op).__name__} is not allowed; "
                "arithmetic is + - * / on numbers",
            )
        symbol, op = _ARITHMETIC[type(node.op)]
        left = self.expect(node.left, "number", f"each side of {symbol}")
        right = self.expect(node.right, "number", f"each side of {symbol}")
        return _Node(
            "number", lambda ctx: op(left.fn(ctx), right.fn(ctx)), left.constant and right.constant
        )

    def name(self, node: ast.Name) -> _Node:
        kind = self.vocab.fields.get(node.id)
        if kind is None:
            raise self.fail(
                node,
                f"unknown field {node.id!r}.{nearest(node.id, self.vocab.fields)}"
                " Fields are the features and scores (p_churn, p_purchase); "
                'tags are written tag("name")',
            )
        self.fields.add(node.id)
        text, field_name = self.text, node.id
        return _Node(kind, lambda ctx: ctx.column(field_name, text))

    def constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool):
            return _Node("bool", lambda ctx: value, True)
        if isinstance(value, int | float):
            return _Node("number", lambda ctx: value, True)
        if isinstance(value, str):
            if len(value) > 500:
                raise self.fail(node, "a text literal is longer than 500 characters")
            return _Node("text", lambda ctx: value, True)
        raise self.fail(
            node,
            f"the literal {value!r} is not allowed; use numbers, "
            "'text' or True/False (and missing(field) for empty values)",
        )

    def compare(self, node: ast.Compare) -> _Node:
        parts: list[Evaluator] = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            parts.append(self.comparison(left_node, op, right_node))
            left_node = right_node

        def run(ctx: RuleContext) -> Any:
            result = parts[0](ctx)
            for part in parts[1:]:
                result = operator.and_(result, part(ctx))
            return result

        return _Node("bool", run)

    def comparison(self, left_node: ast.expr, op: ast.cmpop, right_node: ast.expr) -> Evaluator:
        if isinstance(op, ast.In | ast.NotIn):
            return self.membership(left_node, isinstance(op, ast.NotIn), right_node)
        if type(op) not in _COMPARE:
            raise self.fail(
                left_node,
                f"operator {type(op).__name__} is not allowed; use == or "
                "!= to compare values and missing(field) for empty ones",
            )
        symbol, func = _COMPARE[type(op)]
        left, right = self.visit(left_node), self.visit(right_node)
        if left.kind != right.kind:
            raise self.fail(
                left_node,
                f"cannot compare {left.kind} {ast.unparse(left_node)!r} "
                f"with {right.kind} {ast.unparse(right_node)!r}",
            )
        if symbol not in ("==", "!=") and left.kind != "number":
            raise self.fail(
                left_node,
                f"{symbol} compares numbers, but "
                f"{ast.unparse(left_node)!r} is {left.kind}; use == or !=",
            )

        self.check_choice(left_node, right_node)
        self.check_choice(right_node, left_node)

        def run(ctx: RuleContext) -> Any:
            a, b = left.fn(ctx), right.fn(ctx)
            return _to_bool(func(a, b)) & _known(a) & _known(b)

        return run

    def membership(self, left_node: ast.expr, negate: bool, right_node: ast.expr) -> Evaluator:
        left = self.visit(left_node)
        if left.kind == "bool":
            raise self.fail(left_node, "'in' applies to numbers or text, not true/false")
        if not isinstance(right_node, ast.List | ast.Tuple | ast.Set) or not right_node.elts:
            raise self.fail(right_node, "'in' needs a non-empty literal list, e.g. x in ['a', 'b']")
        values = [self.expect(e, left.kind, "each value of the list") for e in right_node.elts]
        if not all(v.constant for v in values):
            raise self.fail(right_node, "the list after 'in' must hold literal values only")
        options = [v.fn(None) for v in values]  # type: ignore[arg-type]
        for element in right_node.elts:
            self.check_choice(left_node, element)

        def run(ctx: RuleContext) -> Any:
            series = left.fn(ctx)
            found = series.isin(options) if isinstance(series, pd.Series) else series in options
            return (~found if negate else found) & _known(series)

        return run

    def check_choice(self, field_node: ast.expr, value_node: ast.expr) -> None:
        """Reject a literal that a text field with fixed values can never hold."""
        if not (isinstance(field_node, ast.Name) and isinstance(value_node, ast.Constant)):
            return
        allowed = self.vocab.choices.get(field_node.id)
        if allowed and isinstance(value_node.value, str) and value_node.value not in allowed:
            raise self.fail(
                value_node,
                f"{field_node.id} is never {value_node.value!r}; its "
                f"values are {', '.join(allowed)}.{nearest(value_node.value, allowed)}",
            )

    def call(self, node: ast.Call) -> _Node:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            called = ast.unparse(node.func)
            raise self.fail(
                node,
                f"function {called!r} is not allowed.{nearest(called, FUNCTIONS)}"
                f" Functions: {', '.join(FUNCTIONS)}",
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(
                node,
                f"write {FUNCTIONS[node.func.id].split(' ->')[0]} with positional arguments only",
            )
        from crm_ml.rules import functions

        return functions.compile_call(self, node.func.id, node)


def compile_rule(text: str, vocabulary: Vocabulary | None = None) -> Rule:
    """Parse and check a rule against the names a rule may use.

    Parameters
    ----------
    text : str
        The rule, e.g. ``'recency_days > 60 and tag("vip")'``.
    vocabulary : Vocabulary, optional
        Allowed fields, tags and consent values; the built-in features and
        scores (and no tags) by default.

    Returns
    -------
    Rule
        The checked rule, with the fields, tags and consents it reads.

    Raises
    ------
    RuleError
        For a syntax error, an unknown field, tag or function (with the nearest
        known name), a type mismatch, or a node that is not allowed.
    """
    vocab = vocabulary or Vocabulary()
    tree = _parse(text)
    compiler = _Compiler(text, vocab)
    root = compiler.visit(tree.body)
    if root.kind != "bool":
        raise compiler.fail(
            tree.body,
            f"a rule must be true or false, but this is a {root.kind}; "
            "compare it, e.g. recency_days > 60",
        )
    if not (compiler.fields or compiler.tags or compiler.consents):
        raise compiler.fail(
            None, "it tests no field, tag or consent, so it would match everyone or no one"
        )
    _check_probabilities(compiler, tree)
    return Rule(
        text,
        frozenset(compiler.fields),
        frozenset(compiler.tags),
        frozenset(compiler.consents),
        root.fn,
    )


def _check_probabilities(compiler: _Compiler, tree: ast.Expression) -> None:
    """Refuse a probability field compared with a number outside 0–1.

    ``p_churn >= 60`` (60 % meant) matches no one and ``p_churn < 60`` everyone,
    and neither looks wrong in a list of thresholds; the message names 0.6.
    """
    for field, literal in (pair for node in ast.walk(tree) for pair in _compared(node)):
        value = _number(literal)
        if field.id in PROBABILITY_FIELDS and value is not None and not 0 <= value <= 1:
            raise compiler.fail(
                literal,
                f"{field.id} is a probability, compared here with {value:g}: "
                f"{probability_hint(value)}",
            )


def _compared(node: ast.AST) -> Iterator[tuple[ast.Name, ast.expr]]:
    """Yield ``(field, operand)`` for each field compared directly with an operand.

    ``field op x`` and ``x op field`` (each link of a chain), ``field in [x, …]``
    and ``between(field, low, high)``.
    """
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for left, op, right in zip(operands[:-1], node.ops, operands[1:], strict=True):
            if isinstance(op, ast.In | ast.NotIn) and isinstance(
                right, ast.List | ast.Tuple | ast.Set
            ):
                pairs = [(left, x) for x in right.elts]
            else:
                pairs = [(left, right), (right, left)]
            yield from ((f, x) for f, x in pairs if isinstance(f, ast.Name))
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "between"
        and node.args
        and isinstance(node.args[0], ast.Name)
    ):
        yield from ((node.args[0], bound) for bound in node.args[1:])


def _number(node: ast.expr) -> float | None:
    """Return the value of a literal number (``60``, ``-0.1``); None for anything else."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    value = node.value if isinstance(node, ast.Constant) else None
    # Not bool: True is an int, but a rule's True is not a number.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _parse(text: str) -> ast.Expression:
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"A rule must be non-empty text, got {text!r}. Example: recency_days > 60")
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(
            f"The rule is {len(text)} characters long; at most {MAX_RULE_CHARS} are "
            'allowed. Split it into tags and combine them with tag("name").'
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        column = getattr(exc, "offset", None)
        where = f" at column {column}" if column else ""
        raise RuleError(
            f"Rule {text!r} is not a valid expression: {getattr(exc, 'msg', exc)}{where}. "
            'A rule is one expression such as recency_days > 60 and tag("vip"): '
            "compare with == (not =), combine with and/or/not, no ';' and no statements."
        ) from exc
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise RuleError(f"Rule {text[:60]!r}… has more than {MAX_NODES} parts; split it into tags.")
    return tree
