"""Mixed precision as the executors apply it: what is stored in which dtype, and when kernels widen.

With ``dtype="float16"`` activations (and the gradients flowing back) are stored in float16; the
parameters live as float32 master copies, and a layer computes with them rounded to float16, as
PyTorch's autocast does. Layers that keep statistics (BatchNorm) keep all their parameters in
float32. A kernel computes natively in the dtypes its implementation lists; for any other float
dtype its inputs are widened to float32 and its results rounded back, so every accumulation is
float32 (what tensor cores do) and the NumPy backend reproduces half-precision rounding exactly
where values are stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.backends.devices import HALF
from cnngraph.ir import Graph, Node

FLOAT32 = np.dtype("float32")


class Precision:
    def __init__(self, dtype: str):
        self.storage = np.dtype(dtype)
        self.half = dtype in HALF
        self.master = FLOAT32 if self.half else self.storage

    def widens(self, dtypes: tuple[str, ...]) -> bool:
        """Whether an implementation computing in ``dtypes`` needs its half-precision values widened."""
        return self.half and self.storage.name not in dtypes

    @staticmethod
    def keeps_float32(graph: Graph, node: Node) -> bool:
        """A layer with statistics (non-trainable buffers) computes with float32 parameters."""
        return any(not spec.trainable for spec in graph.param_specs(node).values())

    def wide(self, value: Any) -> Any:
        return value.astype(FLOAT32) if getattr(value, "dtype", None) == self.storage and self.half else value

    def narrow(self, value: Any) -> Any:
        """A kernel's float result in the storage dtype (integer results, such as indices, stay)."""
        dtype = getattr(value, "dtype", None)
        if dtype is None or dtype == self.storage or dtype.kind != "f":
            return value
        return value.astype(self.storage)

    def rounded(self, value: Any, compute: np.dtype) -> Any:
        """A master array as a layer computes with it: rounded to the storage dtype, in ``compute``."""
        return value.astype(self.storage).astype(compute, copy=False)
