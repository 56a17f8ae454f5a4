"""A synthetic loyalty retailer with known ground truth, loaded through the regular importers.

>>> from crm_ml.store import Store, init_store
>>> from crm_ml.demo import generate_demo_store, load_truth
>>> store = Store("duckdb:///data/demo.duckdb", create=True)   # doctest: +SKIP
>>> init_store(store)                                      # doctest: +SKIP
>>> summary = generate_demo_store(store)                   # doctest: +SKIP
>>> truth = load_truth(summary.truth_path)                 # doctest: +SKIP
"""

from crm_ml.demo.generator import (
    SyntheticSummary,
    default_truth_path,
    generate,
    generate_demo_store,
)
from crm_ml.demo.truth import TRUTH_COLUMNS, load_truth

__all__ = [
    "TRUTH_COLUMNS",
    "SyntheticSummary",
    "default_truth_path",
    "generate",
    "generate_demo_store",
    "load_truth",
]
