"""Exact TreeSHAP for LightGBM boosters, vectorised over customers.

The same values as LightGBM's ``predict(..., pred_contrib=True)`` (the tests
check them to 1e-9), about thirty times faster than it on two cores for
100,000 customers, because the work per tree is done once for all customers
instead of once per customer.

Path-dependent TreeSHAP credits each leaf's value to the features on the
leaf's path. What a customer receives from a leaf depends on the customer only
through which of those features they *agree* with (they take the path's side
at every split on that feature): with at most ``max_depth`` features on a path,
that is one of ``2 ** depth`` patterns, so each leaf's credits fit a small
table computed once per booster from the covers (the training rows through
each node).

Two things make scoring a batch cheap. The leaves under a node are looked up
together (:class:`_Group`): a row's index into their shared table is whether it
agrees with the path above the node on each feature and which way it goes at
each split below, so a subtree costs one lookup per feature instead of one per
leaf and feature. And each split rule is worked out once per batch
(:class:`_Sides`), though many trees reuse it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

#: LightGBM treats |x| <= this as zero for ``missing_type == "Zero"``.
_ZERO = 1e-35
#: Tables hold 2 ** (features on a path) rows: deeper trees are left to LightGBM.
MAX_PATH_FEATURES = 8
#: Rows per chunk: bounds the per-rule side arrays (one byte per row and rule).
CHUNK_ROWS = 50_000
#: Leaves under a node share one lookup while its index needs at most this many bits
#: (at most 16: indexes are uint16). 10 to 14 measured alike; fewer is slower.
MAX_GROUP_BITS = 12


#: A step on a root-to-node path: (split index, feature, goes left, share of the cover that does).
_Step = tuple[int, int, bool, float]


@dataclass(frozen=True)
class _Group:
    """The leaves under one node, looked up together: one index per row, one table per feature.

    Bit ``i`` of a row's index is set when all of ``bits[i]`` hold: either the
    row agrees with the path above the node on one feature, or it goes left at
    one split inside the node's subtree. That decides which leaves below agree
    with the row on which features, so the contributions of all of them fit in
    one table per feature.
    """

    #: Per index bit: the (split, goes left) conditions that must all hold.
    bits: list[list[tuple[int, bool]]]
    features: list[int]
    #: Per feature: its summed contribution from the group's leaves, by index.
    tables: list[np.ndarray]


@dataclass(frozen=True)
class _Tree:
    splits: list[_Split]
    groups: list[_Group]


@dataclass(frozen=True)
class _Node:
    path: tuple[_Step, ...]
    #: The leaves below: (leaf value, whole path from the root).
    leaves: list[tuple[float, tuple[_Step, ...]]]
    #: Split indices inside the subtree (the node's own first).
    inner: list[int]
    children: list[_Node]


@dataclass(frozen=True)
class ShapTables:
    """A booster compiled for :func:`shap_values`: per-group tables and the expected value."""

    trees: list[_Tree]
    expected_value: float
    n_features: int


@dataclass(frozen=True)
class _Split:
    """One split's rule, parsed from the model dump.

    Trees reuse rules (thresholds are bin edges), and equal rules send the same
    rows left, so a batch works each rule out once.
    """

    feature: int
    threshold: float
    #: The categories that go left, for a categorical split; None for a numeric one.
    categories: tuple[int, ...] | None
    missing: str
    default_left: bool

    @classmethod
    def parse(cls, node: dict[str, Any]) -> _Split:
        categorical = node["decision_type"] == "=="
        return cls(
            feature=int(node["split_feature"]),
            threshold=math.nan if categorical else float(node["threshold"]),
            categories=(
                tuple(int(c) for c in str(node["threshold"]).split("||")) if categorical else None
            ),
            missing=str(node["missing_type"]),
            default_left=bool(node["default_left"]),
        )


class _Sides:
    """For one batch, which rows go left at each split (1 = yes), each rule worked out once."""

    def __init__(self, X: np.ndarray) -> None:
        self._X = X
        self._columns: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._left: dict[_Split, np.ndarray] = {}
        self._right: dict[_Split, np.ndarray] = {}

    def left(self, split: _Split) -> np.ndarray:
        if split not in self._left:
            self._left[split] = self._goes_left(split).view(np.uint8)
        return self._left[split]

    def right(self, split: _Split) -> np.ndarray:
        if split not in self._right:
            self._right[split] = 1 - self.left(split)
        return self._right[split]

    def _column(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        if feature not in self._columns:
            x = np.ascontiguousarray(self._X[:, feature])
            self._columns[feature] = (x, np.isnan(x))
        return self._columns[feature]

    def _goes_left(self, split: _Split) -> np.ndarray:
        """LightGBM's rules: missing values as zero (``None``, ``Zero``) or apart (``NaN``)."""
        x, nan = self._column(split.feature)
        if split.categories is not None:
            code = np.where(nan, -1.0 if split.missing == "NaN" else 0.0, x)
            return np.isin(code, split.categories) & (code >= 0)
        left = x <= split.threshold  # False where NaN
        if split.missing == "Zero":
            zero = nan | (np.abs(x) <= _ZERO)
            return left | zero if split.default_left else left & ~zero
        if split.missing == "NaN" and split.default_left:
            return left | nan
        if split.missing not in ("NaN", "Zero") and split.threshold >= 0:
            return left | nan  # NaN is taken as 0
        return left


def _shapley_weights(m: int) -> np.ndarray:
    """Weight of a coalition of size s among the m - 1 other path features."""
    return np.array(
        [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]
    )


def _leaf_columns(value: float, zero_fractions: np.ndarray) -> list[np.ndarray]:
    """Contribution of each path feature for every agreement pattern of the path features.

    Summing the Shapley weights over coalitions of the other features is done
    with the polynomial prod_k (zero_k + agree_k t): its t**s coefficient sums
    the coalitions of size s.
    """
    m = zero_fractions.size
    agree = ((np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1).astype(float)
    weights = _shapley_weights(m)
    columns = []
    for j in range(m):
        poly = np.zeros((2**m, m))
        poly[:, 0] = 1.0
        for k in range(m):
            if k != j:
                poly[:, 1:] = poly[:, 1:] * zero_fractions[k] + poly[:, :-1] * agree[:, k, None]
                poly[:, 0] *= zero_fractions[k]
        columns.append(value * (agree[:, j] - zero_fractions[j]) * (poly @ weights))
    return columns


def _features(path: Sequence[_Step]) -> list[int]:
    return list(dict.fromkeys(f for _, f, _, _ in path))


def _group(node: _Node) -> _Group:
    """Tables of the leaves under ``node`` (see :class:`_Group`)."""
    above = _features(node.path)
    bits = [[(s, left) for s, f, left, _ in node.path if f == g] for g in above]
    bits += [[(s, True)] for s in node.inner]
    index = np.arange(2 ** len(bits))
    holds = [(index >> i) & 1 for i in range(len(bits))]
    agrees_above = dict(zip(above, holds[: len(above)], strict=True))
    goes_left = dict(zip(node.inner, holds[len(above) :], strict=True))
    tables: dict[int, np.ndarray] = {}
    for value, path in node.leaves:
        features = _features(path)
        zero = np.array([np.prod([z for _, f, _, z in path if f == g]) for g in features])
        pattern = np.zeros_like(index)
        for k, g in enumerate(features):
            agree = agrees_above.get(g, np.ones_like(index))
            for s, f, left, _ in path[len(node.path) :]:
                if f == g:
                    agree = agree & (goes_left[s] if left else 1 - goes_left[s])
            pattern |= agree << k
        for g, column in zip(features, _leaf_columns(value, zero), strict=True):
            tables[g] = tables.get(g, 0.0) + column[pattern]
    return _Group(bits, list(tables), list(tables.values()))


def _place(node: _Node, groups: list[_Group]) -> None:
    """Group the largest subtrees whose index fits :data:`MAX_GROUP_BITS` bits."""
    if not node.children or len(_features(node.path)) + len(node.inner) <= MAX_GROUP_BITS:
        groups.append(_group(node))
        return
    for child in node.children:
        _place(child, groups)


def _compile_tree(root: dict[str, Any]) -> tuple[_Tree, float]:
    """Return the tree's tables and its expected value (cover-weighted mean of the leaves)."""
    splits: list[_Split] = []

    def build(node: dict[str, Any], path: tuple[_Step, ...]) -> _Node:
        if "leaf_index" in node:
            return _Node(path, [(float(node["leaf_value"]), path)], [], [])
        index = len(splits)
        splits.append(_Split.parse(node))
        cover = float(node["internal_count"])
        children = []
        for side, left in (("left_child", True), ("right_child", False)):
            child = node[side]
            count = child["leaf_count"] if "leaf_index" in child else child["internal_count"]
            step = (index, int(node["split_feature"]), left, float(count) / cover)
            children.append(build(child, (*path, step)))
        leaves = [leaf for child in children for leaf in child.leaves]
        return _Node(path, leaves, [index, *(s for c in children for s in c.inner)], children)

    top = build(root, ())
    groups: list[_Group] = []
    _place(top, groups)
    expected = sum(v * float(np.prod([z for *_, z in path])) for v, path in top.leaves)
    return _Tree(splits, groups), expected


def shap_tables(booster: lgb.Booster) -> ShapTables | None:
    """Compile ``booster`` for :func:`shap_values` (about a second for 150 trees).

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


def _index(bits: list[list[tuple[int, bool]]], splits: list[_Split], sides: _Sides) -> np.ndarray:
    """Each row's index into a group's tables (uint8, or uint16 beyond 8 bits)."""
    wide = len(bits) > 8
    index: np.ndarray | None = None
    for bit, conditions in enumerate(bits):
        holds: np.ndarray | None = None
        for split, goes_left in conditions:
            side = sides.left(splits[split]) if goes_left else sides.right(splits[split])
            holds = side if holds is None else holds & side
        assert holds is not None
        if wide:
            holds = holds.astype(np.uint16)
        term = holds << bit if bit else holds
        index = term if index is None else index | term
    assert index is not None  # a group has a split below it or a feature above it
    return index


def _values(tables: ShapTables, X: np.ndarray) -> np.ndarray:
    phi = np.zeros((tables.n_features + 1, len(X)))
    phi[-1] = tables.expected_value
    sides = _Sides(X)
    for tree in tables.trees:
        for group in tree.groups:
            index = _index(group.bits, tree.splits, sides)
            for feature, table in zip(group.features, group.tables, strict=True):
                phi[feature] += table.take(index)
    return phi.T


def shap_values(tables: ShapTables, X: np.ndarray, *, n_jobs: int = 2) -> np.ndarray:
    """Return exact SHAP values, shape ``(n, features + 1)``; the last column is the expected value.

    ``X`` is the float matrix LightGBM scores: categorical features as their
    category codes, missing values as NaN. Rows go in chunks of at most
    :data:`CHUNK_ROWS` (a chunk keeps one byte per row for every split rule)
    to ``n_jobs`` threads (numpy releases the GIL in this work).
    """
    X = np.asarray(X, dtype=float)
    n_chunks = max(n_jobs, -(-len(X) // CHUNK_ROWS)) if len(X) >= 10_000 else 1
    if n_chunks == 1:
        return _values(tables, X)
    chunks = np.array_split(np.arange(len(X)), n_chunks)
    with ThreadPoolExecutor(max(n_jobs, 1)) as pool:
        return np.vstack(list(pool.map(lambda rows: _values(tables, X[rows]), chunks)))
