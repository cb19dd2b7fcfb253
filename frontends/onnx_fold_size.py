"""How large a constant fold may get, known before it runs.

Folding runs ``onnx.reference`` on constants from the file, and some ops make their output's size
from input *values*: a ``ConstantOfShape`` of [40000, 40000] is a few hundred bytes of file and
7.7 GB of folded constant. ``output_elements`` bounds the largest output of a node from its
inputs' values and shapes (and a Constant's sparse dims), so the importer can refuse it against
the size budget before evaluating. Ops not listed here are bounded by broadcasting their inputs (element-wise ops) or by
the sum of their inputs' sizes (the rest move or reduce data); the importer also checks every
folded result after the fact.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Inputs = list  # np.ndarray or None per ONNX input


def _ints(a) -> list[int]:
    return [int(v) for v in np.ravel(a)]


def _broadcast(*shapes) -> tuple[int, ...]:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(d) if min(d) != 0 else 0 for d in zip(*padded))


def _constant_of_shape(attrs: dict, x: Inputs) -> int:
    return math.prod(_ints(x[0]))


def _expand(attrs: dict, x: Inputs) -> int:
    return math.prod(_broadcast(x[0].shape, _ints(x[1])))


def _tile(attrs: dict, x: Inputs) -> int:
    return x[0].size * math.prod(_ints(x[1]))


def _range(attrs: dict, x: Inputs) -> int:
    start, limit, delta = (float(np.ravel(v)[0]) for v in x[:3])
    return max(math.ceil((limit - start) / delta), 0) if delta else 0


def _one_hot(attrs: dict, x: Inputs) -> int:
    return x[0].size * abs(int(np.ravel(x[1])[0]))


def _resize(attrs: dict, x: Inputs) -> int:
    """Resize (roi, scales, sizes as inputs 1 to 3) and Upsample (scales as input 1 or attribute)."""
    sizes = x[3] if len(x) > 3 and x[3] is not None and x[3].size else None
    if sizes is not None:
        return math.prod(_ints(sizes))
    scales = next((v for v in x[1:3] if v is not None and v.size), attrs.get("scales", [1.0]))
    return x[0].size * math.ceil(math.prod(abs(float(s)) for s in np.ravel(scales)))


def _pad(attrs: dict, x: Inputs) -> int:
    pads = _ints(x[1]) if len(x) > 1 and x[1] is not None else list(attrs.get("pads", []))
    rank = x[0].ndim
    grown = list(x[0].shape)
    for axis in range(min(rank, len(pads) // 2)):
        grown[axis] += max(pads[axis], 0) + max(pads[axis + len(pads) // 2], 0)
    return math.prod(grown)


def _gather(attrs: dict, x: Inputs) -> int:
    data, indices = x[0], x[1]
    axis_len = data.shape[attrs.get("axis", 0)] if data.ndim else 1
    return (data.size // axis_len if axis_len else 0) * indices.size


def _matmul(attrs: dict, x: Inputs) -> int:
    a, b = (v if v.ndim >= 2 else v.reshape(1, -1) for v in x[:2])
    batch = _broadcast(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
    return math.prod(batch) * a.shape[-2] * b.shape[-1]


def _constant(attrs: dict, x: Inputs) -> int:
    """A dense value came from the file already; a sparse one densifies to its dims."""
    sparse = attrs.get("sparse_value")
    if sparse is not None:
        return math.prod(int(d) for d in sparse.dims)
    return max((np.size(v) for v in attrs.values()), default=1)


SIZED: dict[str, Callable[[dict, Inputs], int]] = {
    "ConstantOfShape": _constant_of_shape, "Expand": _expand, "Tile": _tile, "Range": _range,
    "OneHot": _one_hot, "Resize": _resize, "Upsample": _resize, "Pad": _pad, "Gather": _gather,
    "MatMul": _matmul, "Gemm": _matmul, "Constant": _constant,
    "Shape": lambda attrs, x: max(x[0].ndim, 1), "Size": lambda attrs, x: 1,  # of a runtime input's probe
}


def output_elements(op_type: str, attrs: dict, inputs: Inputs) -> int:
    """An upper bound on the elements of ``op_type``'s largest output; ValueError for inputs that make no sense."""
    present = [np.asarray(v) for v in inputs if v is not None]
    try:
        if op_type in SIZED:
            return SIZED[op_type](attrs, [None if v is None else np.asarray(v) for v in inputs])
        if not present:
            return 1
        spread = math.prod(_broadcast(*(v.shape for v in present)))
        return max(spread, sum(v.size for v in present))
    except (IndexError, TypeError, ValueError, OverflowError, ZeroDivisionError, KeyError) as e:
        raise ValueError(f"inputs or attributes out of range for {op_type} ({type(e).__name__}: {e})") from None
