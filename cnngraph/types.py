"""Value types: the shape (with its symbolic dimensions) and dtype of one tensor.

A module of their own, below both the IR and the op schemas: ops infer types and the IR records
them, so neither needs the other to say what a type is.

A dimension is an int or a name. ``"N"`` is the batch; other names are sizes known only at run time
that are not the batch: the number of regions ``"R"`` a detector is handed, the number of boxes NMS
keeps. Equal names are equal sizes; a name is never assumed equal to a number or to another name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

BATCH = "N"
Dim = int | str


@dataclass(frozen=True)
class TensorType:
    """Shape and dtype of one value; ``shape[0]`` is usually the symbolic batch ``"N"``."""

    shape: tuple[Dim, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def concrete(self, batch: int, sizes: Mapping[str, int] | None = None) -> tuple[int, ...]:
        """The shape with the batch replaced by ``batch`` and every other name by ``sizes[name]``
        (``batch`` where ``sizes`` lacks it: one region per image is a fine random probe)."""
        sizes = sizes or {}
        return tuple(d if isinstance(d, int) else batch if d == BATCH else sizes.get(d, batch) for d in self.shape)

    def per_sample(self) -> int:
        """Number of elements for one sample (every symbolic dimension counted as 1)."""
        return int(np.prod([d if isinstance(d, int) else 1 for d in self.shape], dtype=np.int64))

    def symbols(self) -> tuple[str, ...]:
        """The named dimensions of the shape, in order."""
        return tuple(d for d in self.shape if isinstance(d, str))

    def __str__(self) -> str:
        short = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64"}
        return f"{short.get(self.dtype, self.dtype)}[{','.join(str(d) for d in self.shape)}]"


def is_symbol(dim: Dim) -> bool:
    """Whether ``dim`` is a usable dimension name: an identifier such as ``N``, ``R`` or ``detections``."""
    return isinstance(dim, str) and dim.isidentifier()


def is_number_dtype(dtype: str) -> bool:
    """Whether ``dtype`` names a NumPy integer or float type (what a graph input may hold)."""
    try:
        return np.dtype(dtype).kind in "iuf"
    except TypeError:
        return False


def bind_sizes(types: Mapping[str, TensorType], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """The size of every named dimension given arrays of ``shapes`` for values of ``types``.

    Raises ValueError naming the value, the dimension and both sizes where one name meets two sizes
    (an image batch of 2 and a batch index list of 3), or where a fixed size is not met.
    """
    sizes: dict[str, int] = {}
    seen: dict[str, str] = {}
    for name, t in types.items():
        shape = tuple(shapes[name])
        if len(shape) != t.rank:
            raise ValueError(f"input '{name}': expected shape {fmt_shape(t.shape)}, got {fmt_shape(shape)}")
        for axis, (want, got) in enumerate(zip(t.shape, shape)):
            if isinstance(want, int):
                if want != got:
                    raise ValueError(f"input '{name}': expected shape {fmt_shape(t.shape)}, got {fmt_shape(shape)}")
            elif sizes.setdefault(want, got) != got:
                raise ValueError(f"input '{name}' has {want} = {got} (axis {axis}), but '{seen[want]}' has "
                                 f"{want} = {sizes[want]}")
            else:
                seen.setdefault(want, name)
    return sizes


def fmt_shape(shape: tuple) -> str:
    """Shapes in error messages: (N, 64, 56, 56)."""
    return "(" + ", ".join(str(d) for d in shape) + ")"
