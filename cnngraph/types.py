"""Value types: the shape (with its symbolic batch) and dtype of one tensor.

A module of their own, below both the IR and the op schemas: ops infer types and the IR records
them, so neither needs the other to say what a type is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCH = "N"
Dim = int | str


@dataclass(frozen=True)
class TensorType:
    """Shape and dtype of one value; ``shape[0]`` is the symbolic batch ``"N"``."""

    shape: tuple[Dim, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def concrete(self, batch: int) -> tuple[int, ...]:
        """The shape with the symbolic batch replaced by ``batch``."""
        return tuple(batch if d == BATCH else d for d in self.shape)

    def per_sample(self) -> int:
        """Number of elements for one sample (the batch dimension counted as 1)."""
        return int(np.prod([1 if d == BATCH else d for d in self.shape], dtype=np.int64))

    def __str__(self) -> str:
        short = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64"}
        return f"{short.get(self.dtype, self.dtype)}[{','.join(str(d) for d in self.shape)}]"
