"""Per-customer attributions along each tree's decision path (Saabas).

Exact SHAP (:mod:`crm_ml.models.treeshap`, the default) weighs every leaf of
every tree for each customer; path attribution only the leaf the customer
reaches. It gives each split's change in the tree's value to the split's
feature: O(trees x depth), computed from the leaf indices (``pred_leaf=True``)
and a per-leaf table, as one sparse matrix product. Like SHAP it is additive
(contributions plus ``bias`` equal the log-odds); unlike SHAP it credits splits
near the leaves more, so the top driver is SHAP's for about two customers in
three (``bench/models.py``). It used to be the faster of the two; since SHAP
looks leaves up a subtree at a time, both take about as long.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse


def _walk(node: dict[str, Any], path: np.ndarray, out: dict[int, np.ndarray]) -> None:
    """Record, for every leaf under ``node``, the per-feature value changes on its path."""
    if "leaf_index" in node:
        out[int(node["leaf_index"])] = path
        return
    feature = int(node["split_feature"])
    for side in ("left_child", "right_child"):
        child = node[side]
        value = float(child["leaf_value"] if "leaf_index" in child else child["internal_value"])
        step = path.copy()
        step[feature] += value - float(node["internal_value"])
        _walk(child, step, out)


def _tree_table(tree: dict[str, Any], n_features: int) -> tuple[np.ndarray, float]:
    """Return ``(leaves x features table, root value)`` for one dumped tree."""
    root = tree["tree_structure"]
    if "split_feature" not in root:  # a single-leaf tree
        return np.zeros((1, n_features)), float(root["leaf_value"])
    leaves: dict[int, np.ndarray] = {}
    _walk(root, np.zeros(n_features), leaves)
    return np.vstack([leaves[i] for i in range(len(leaves))]), float(root["internal_value"])


def path_tables(booster: lgb.Booster) -> tuple[np.ndarray, np.ndarray, float]:
    """Return ``(stacked leaf table, each tree's row offset, bias)`` for a booster."""
    dump = booster.dump_model()
    n_features = len(dump["feature_names"])
    tables, offsets, bias, start = [], [], 0.0, 0
    for tree in dump["tree_info"]:
        table, root_value = _tree_table(tree, n_features)
        tables.append(table)
        offsets.append(start)
        start += table.shape[0]
        bias += root_value
    return np.vstack(tables), np.asarray(offsets), bias


def path_contributions(
    booster: lgb.Booster, X: pd.DataFrame, tables: tuple[np.ndarray, np.ndarray, float]
) -> np.ndarray:
    """Return path attributions, shape ``(n, features + 1)``; the last column is the bias."""
    table, offsets, bias = tables
    leaves = np.asarray(booster.predict(X, pred_leaf=True), dtype=np.int64).reshape(len(X), -1)
    n, n_trees = leaves.shape
    columns = (leaves + offsets[None, :n_trees]).ravel()
    selector = sparse.csr_matrix(
        (np.ones(columns.size), columns, np.arange(0, n * n_trees + 1, n_trees)),
        shape=(n, table.shape[0]),
    )
    values = np.asarray(selector @ table)
    return np.column_stack([values, np.full(n, bias)])
