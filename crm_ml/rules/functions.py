"""The functions a rule may call: tag, consent, between, missing, text matching, ranks.

Each ``_compile_<name>`` checks its arguments when the rule is saved and
returns an evaluator; string arguments must be literals, so a rule can never
build a tag name, a consent channel or a pattern from data.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crm_ml.rules.compiler import FUNCTIONS, RuleContext, _known, _like_regex, _Node, _to_bool
from crm_ml.rules.vocabulary import nearest

if TYPE_CHECKING:
    from crm_ml.rules.compiler import _Compiler


def _arity(compiler: _Compiler, name: str, node: ast.Call, count: int) -> None:
    if len(node.args) != count:
        raise compiler.fail(
            node, f"{name}() takes {count} argument(s), got {len(node.args)}: {FUNCTIONS[name]}"
        )


def _literal_text(compiler: _Compiler, node: ast.expr, role: str) -> str:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        raise compiler.fail(node, f'{role} must be a quoted literal, e.g. "vip"')
    if len(node.value) > 500:
        raise compiler.fail(node, f"{role} is longer than 500 characters")
    return node.value


def _compile_tag(compiler: _Compiler, node: ast.Call) -> _Node:
    _arity(compiler, "tag", node, 1)
    name = _literal_text(compiler, node.args[0], "the tag name")
    if name not in compiler.vocab.tags:
        raise compiler.fail(
            node,
            f"unknown tag {name!r}.{nearest(name, compiler.vocab.tags)} "
            "`crm-ml tags list` shows the defined tags, and `crm-ml tags apply --as-of DATE` "
            "installs the built-in ones the first time; define your own with "
            "crm_ml.tags.save_tag_definition in Python",
        )
    compiler.tags.add(name)
    text = compiler.text

    def run(ctx: RuleContext) -> Any:
        if name not in ctx.tags:
            raise KeyError(f"tag {name!r} was not loaded for rule {text!r}")
        return ctx.members(ctx.tags[name], text, f"tag:{name}")

    return _Node("bool", run)


def _compile_consent(compiler: _Compiler, node: ast.Call) -> _Node:
    _arity(compiler, "consent", node, 2)
    channel = _literal_text(compiler, node.args[0], "the consent channel")
    purpose = _literal_text(compiler, node.args[1], "the consent purpose")
    vocab = compiler.vocab
    if channel not in vocab.channels:
        raise compiler.fail(
            node,
            f"unknown consent channel {channel!r}.{nearest(channel, vocab.channels)}"
            f" Channels: {', '.join(vocab.channels)}",
        )
    if purpose not in vocab.purposes:
        raise compiler.fail(
            node,
            f"unknown consent purpose {purpose!r}.{nearest(purpose, vocab.purposes)}"
            f" Purposes: {', '.join(vocab.purposes)}",
        )
    key = (channel, purpose)
    compiler.consents.add(key)
    text = compiler.text
    return _Node("bool", lambda ctx: ctx.members(ctx.consents[key], text, "consent"))


def _compile_between(compiler: _Compiler, node: ast.Call) -> _Node:
    _arity(compiler, "between", node, 3)
    x, low, high = (compiler.expect(a, "number", "each argument of between()") for a in node.args)

    def run(ctx: RuleContext) -> Any:
        value = x.fn(ctx)
        lo, hi = low.fn(ctx), high.fn(ctx)
        inside = _to_bool(value >= lo) & _to_bool(value <= hi)
        return inside & _known(value) & _known(lo) & _known(hi)

    return _Node("bool", run)


def _compile_missing(compiler: _Compiler, node: ast.Call) -> _Node:
    _arity(compiler, "missing", node, 1)
    if not isinstance(node.args[0], ast.Name):
        raise compiler.fail(node, "missing() takes a field name, e.g. missing(recency_days)")
    value = compiler.visit(node.args[0])
    return _Node("bool", lambda ctx: value.fn(ctx).isna())


def _text_matcher(
    compiler: _Compiler, node: ast.Call, name: str, match: Callable[[pd.Series, str], pd.Series]
) -> _Node:
    _arity(compiler, name, node, 2)
    value = compiler.expect(node.args[0], "text", f"the first argument of {name}()")
    literal = _literal_text(compiler, node.args[1], f"the second argument of {name}()")

    def run(ctx: RuleContext) -> Any:
        series = value.fn(ctx)
        if not isinstance(series, pd.Series):
            series = pd.Series(series, index=ctx.features.index)
        return _to_bool(match(series.astype("string"), literal))

    return _Node("bool", run)


def _contains(series: pd.Series, text: str) -> pd.Series:
    return series.str.contains(text, regex=False)


def _startswith(series: pd.Series, text: str) -> pd.Series:
    return series.str.startswith(text)


def _like(series: pd.Series, pattern: str) -> pd.Series:
    return series.str.fullmatch(_like_regex(pattern), flags=0)


def _rank_of(compiler: _Compiler, node: ast.Call, name: str) -> Callable[[RuleContext], pd.Series]:
    """Rank a number among all customers, or among those where the optional condition holds."""
    if len(node.args) not in (1, 2):
        raise compiler.fail(
            node, f"{name}() takes 1 or 2 arguments, got {len(node.args)}: {FUNCTIONS[name]}"
        )
    value = compiler.expect(node.args[0], "number", f"the first argument of {name}()")
    if value.constant:
        raise compiler.fail(
            node, f"{name}() ranks a field among customers, e.g. {name}(revenue_365d)"
        )
    among = (
        compiler.expect(node.args[1], "bool", f"the second argument of {name}()")
        if len(node.args) == 2
        else None
    )

    def run(ctx: RuleContext) -> pd.Series:
        raw = value.fn(ctx)
        if not isinstance(raw, pd.Series):
            raw = pd.Series(raw, index=ctx.features.index)
        series = pd.Series(pd.to_numeric(raw, errors="coerce"), index=raw.index, dtype="float64")
        if among is not None:
            keep = _to_bool(among.fn(ctx))
            if not isinstance(keep, pd.Series):
                keep = pd.Series(bool(keep), index=series.index)
            series = series.where(keep)
        return series.rank(pct=True, method="average")

    return run


def _compile_percentile(compiler: _Compiler, node: ast.Call) -> _Node:
    return _Node("number", _rank_of(compiler, node, "percentile"))


def _compile_quintile(compiler: _Compiler, node: ast.Call) -> _Node:
    rank = _rank_of(compiler, node, "quintile")

    def run(ctx: RuleContext) -> pd.Series:
        pct = rank(ctx)
        return pd.Series(np.ceil(pct * 5).clip(1, 5), index=pct.index).where(pct.notna(), math.nan)

    return _Node("number", run)


_COMPILERS: dict[str, Callable[[Any, ast.Call], _Node]] = {
    "tag": _compile_tag,
    "consent": _compile_consent,
    "between": _compile_between,
    "missing": _compile_missing,
    "contains": lambda c, n: _text_matcher(c, n, "contains", _contains),
    "startswith": lambda c, n: _text_matcher(c, n, "startswith", _startswith),
    "like": lambda c, n: _text_matcher(c, n, "like", _like),
    "percentile": _compile_percentile,
    "quintile": _compile_quintile,
}


def compile_call(compiler: _Compiler, name: str, node: ast.Call) -> _Node:
    """Check and compile a call to one of :data:`~crm_ml.rules.compiler.FUNCTIONS`."""
    return _COMPILERS[name](compiler, node)
