"""Fast text columns for millions of rows (identifiers, labels drawn from small pools).

Python string formatting per row would dominate the generator's run time at a
million customers; these helpers do the same with Arrow compute kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray


def numbered(prefix: str, numbers: NDArray[np.int64], width: int) -> pd.Series:
    """Return identifiers ``prefix`` + zero-padded ``numbers`` (``C00000042``)."""
    digits = pc.utf8_lpad(
        pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0"
    )
    return pd.Series(pc.binary_join_element_wise(prefix, digits, ""), dtype="str")


def ids(prefix: str, start: int, n: int, width: int) -> pd.Series:
    """``n`` consecutive identifiers from ``start``."""
    return numbered(prefix, np.arange(start, start + n, dtype=np.int64), width)


def pick(pool: Sequence[str] | NDArray[np.str_], index: NDArray[np.int64]) -> pd.Series:
    """``pool[index]`` as a text column; a negative index gives a missing value."""
    values = pa.array(list(pool), pa.string())
    idx = pa.array(index, pa.int64(), mask=np.asarray(index) < 0)
    return pd.Series(pc.take(values, idx), dtype="str")


def join(*parts: pd.Series | str) -> pd.Series:
    """Concatenate text columns (and constant strings) element-wise."""
    arrays = [p if isinstance(p, str) else pa.array(p, pa.string()) for p in parts]
    return pd.Series(pc.binary_join_element_wise(*arrays, ""), dtype="str")
