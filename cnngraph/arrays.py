"""Which array module an array belongs to, and how to get NumPy values out of any of them.

Losses, optimizers and metrics take the module from the arrays they are handed (``xp`` in, ``xp``
out), so they run on whatever backend produced them without importing it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def namespace(array: Any) -> Any:
    """numpy, cupy, or the strict test backend's namespace: the module that computes on ``array``."""
    cupy = sys.modules.get("cupy")  # never imported just to answer
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    get = getattr(array, "__array_namespace__", None)
    return get() if get is not None and not isinstance(array, np.ndarray) else np


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy array of ``array``'s values; device arrays are copied back (``.get()``, as CuPy's)."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    return get() if callable(get) and not isinstance(array, dict) else np.asarray(array)
