"""Exact TreeSHAP for LightGBM boosters, vectorised over customers.

The same values as LightGBM's ``predict(..., pred_contrib=True)`` (the tests
check them to 1e-9), about eight times faster on two cores for a million
customers, because the work per tree is done once for all customers instead of
once per customer.

Path-dependent TreeSHAP credits each leaf's value to the features on the
leaf's path. What a customer receives from a leaf depends on the customer only
through which of those features they *agree* with (they take the path's side
at every split on that feature): with at most ``max_depth`` features on a path,
that is one of ``2 ** depth`` patterns. So each leaf gets a small table,
pattern -> contribution of each path feature, computed once per booster from
the covers (the training rows through each node); scoring a batch is then a few
comparisons per split, a pattern per leaf and a table lookup, all numpy.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

#: LightGBM treats |x| <= this as zero for ``missing_type == "Zero"``.
_ZERO = 1e-35
#: Tables hold 2 ** (features on a path) rows: deeper trees are left to LightGBM.
MAX_PATH_FEATURES = 8


@dataclass(frozen=True)
class _Leaf:
    features: list[int]
    #: Per path feature: the (split node, goes left) pairs on that feature.
    conditions: list[list[tuple[int, bool]]]
    #: Per path feature: contribution by agreement pattern (bit k = feature k agrees).
    columns: list[np.ndarray]


@dataclass(frozen=True)
class _Tree:
    splits: list[dict[str, Any]]
    leaves: list[_Leaf]


@dataclass(frozen=True)
class ShapTables:
    """A booster compiled for :func:`shap_values`: per-leaf tables and the expected value."""

    trees: list[_Tree]
    expected_value: float
    n_features: int


def _goes_left(split: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Where rows go left at ``split``, with LightGBM's rules for missing values and categories."""
    missing, nan = split["missing_type"], np.isnan(x)
    if split["decision_type"] == "==":
        categories = [int(c) for c in str(split["threshold"]).split("||")]
        code = np.where(nan, -1.0 if missing == "NaN" else 0.0, x)
        return np.isin(code, categories) & (code >= 0)
    value = np.where(nan & (missing != "NaN"), 0.0, x)
    left = value <= float(split["threshold"])
    if missing == "Zero":
        return np.where(np.abs(value) <= _ZERO, bool(split["default_left"]), left)
    if missing == "NaN":
        return np.where(nan, bool(split["default_left"]), left)
    return left


def _shapley_weights(m: int) -> list[float]:
    """Weight of a coalition of size s among the m - 1 other path features."""
    return [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]


def _leaf_columns(value: float, zero_fractions: np.ndarray) -> list[np.ndarray]:
    """Contribution of each path feature for every agreement pattern of the path features."""
    m = zero_fractions.size
    agree = (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1  # pattern x feature
    weights = _shapley_weights(m)
    columns = []
    for j in range(m):
        others = [k for k in range(m) if k != j]
        total = np.zeros(2**m)
        for size in range(m):
            for coalition in itertools.combinations(others, size):
                term = np.full(2**m, weights[size])
                for k in others:
                    term = term * (agree[:, k] if k in coalition else zero_fractions[k])
                total += term
        columns.append(value * (agree[:, j] - zero_fractions[j]) * total)
    return columns


def _compile_tree(root: dict[str, Any]) -> tuple[_Tree, float]:
    """Return the tree's tables and its expected value (cover-weighted mean of the leaves)."""
    splits: list[dict[str, Any]] = []
    leaves: list[_Leaf] = []
    expected = 0.0

    def walk(node: dict[str, Any], path: list[tuple[int, int, bool, float]]) -> None:
        nonlocal expected
        if "leaf_index" in node:
            value = float(node["leaf_value"])
            features = list(dict.fromkeys(f for _, f, _, _ in path))
            conditions = [[(s, left) for s, f, left, _ in path if f == g] for g in features]
            zero = np.array([np.prod([z for _, f, _, z in path if f == g]) for g in features])
            leaves.append(_Leaf(features, conditions, _leaf_columns(value, zero)))
            expected += value * float(np.prod([z for *_, z in path]))
            return
        index = len(splits)
        splits.append(node)
        cover = float(node["internal_count"])
        for side, left in (("left_child", True), ("right_child", False)):
            child = node[side]
            count = child["leaf_count"] if "leaf_index" in child else child["internal_count"]
            walk(child, [*path, (index, int(node["split_feature"]), left, float(count) / cover)])

    walk(root, [])
    return _Tree(splits, leaves), expected


def shap_tables(booster: lgb.Booster) -> ShapTables | None:
    """Compile ``booster`` for :func:`shap_values` (about two seconds for 150 trees).

    Returns None when a leaf's path has more than :data:`MAX_PATH_FEATURES`
    distinct features (trees without a depth limit): use LightGBM's own
    ``pred_contrib`` then.
    """
    dump = booster.dump_model()
    if _longest_path(dump) > MAX_PATH_FEATURES:
        return None
    trees, expected = [], 0.0
    for info in dump["tree_info"]:
        root = info["tree_structure"]
        if "leaf_index" in root:  # a single-leaf tree only shifts the expected value
            expected += float(root["leaf_value"])
            continue
        tree, tree_expected = _compile_tree(root)
        trees.append(tree)
        expected += tree_expected
    return ShapTables(trees, expected, len(dump["feature_names"]))


def _longest_path(dump: dict[str, Any]) -> int:
    """Most distinct features on any root-to-leaf path of the dumped model."""

    def deepest(node: dict[str, Any], seen: frozenset[int]) -> int:
        if "leaf_index" in node:
            return len(seen)
        seen = seen | {int(node["split_feature"])}
        return max(deepest(node["left_child"], seen), deepest(node["right_child"], seen))

    return max((deepest(t["tree_structure"], frozenset()) for t in dump["tree_info"]), default=0)


def _values(tables: ShapTables, X: np.ndarray) -> np.ndarray:
    phi = np.zeros((tables.n_features + 1, len(X)))
    phi[-1] = tables.expected_value
    for tree in tables.trees:
        left = [_goes_left(s, X[:, int(s["split_feature"])]).view(np.uint8) for s in tree.splits]
        right = [1 - side for side in left]
        for leaf in tree.leaves:
            pattern: np.ndarray | None = None
            for bit, condition in enumerate(leaf.conditions):
                agree = left[condition[0][0]] if condition[0][1] else right[condition[0][0]]
                for split, goes_left in condition[1:]:
                    agree = agree & (left[split] if goes_left else right[split])
                term = agree << bit if bit else agree
                pattern = term if pattern is None else pattern | term
            assert pattern is not None  # a leaf below a split has a feature on its path
            for feature, column in zip(leaf.features, leaf.columns, strict=True):
                phi[feature] += column.take(pattern)
    return phi.T


def shap_values(tables: ShapTables, X: np.ndarray, *, n_jobs: int = 2) -> np.ndarray:
    """Return exact SHAP values, shape ``(n, features + 1)``; the last column is the expected value.

    ``X`` is the float matrix LightGBM scores: categorical features as their
    category codes, missing values as NaN. Rows are split over ``n_jobs``
    threads (numpy releases the GIL in this work).
    """
    X = np.asarray(X, dtype=float)
    if n_jobs <= 1 or len(X) < 10_000:
        return _values(tables, X)
    parts = np.array_split(np.arange(len(X)), n_jobs)
    with ThreadPoolExecutor(n_jobs) as pool:
        return np.vstack(list(pool.map(lambda rows: _values(tables, X[rows]), parts)))
