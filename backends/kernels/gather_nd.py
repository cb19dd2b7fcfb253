"""GatherND: fancy indexing by the index columns; its backward adds each gradient row back where it came from."""

from __future__ import annotations

import numpy as np

from cnngraph.backends.kernels import backward, kernel
from cnngraph.errors import CnnGraphError


def checked_indices(xp, indices, sizes, op: str, where: str):
    """``indices`` as whole, in-range int64 (negative ones counted from the end of ``sizes``), or a
    CnnGraphError naming ``op`` and, for an index out of range, ``where`` it had to fit."""
    whole = indices.astype(xp.int64)
    if indices.size and bool((whole != indices).any()):
        raise CnnGraphError(f"{op}: indices must be whole numbers")
    wrapped = xp.where(whole < 0, whole + sizes, whole)
    if indices.size and bool(((wrapped < 0) | (wrapped >= sizes)).any()):
        raise CnnGraphError(f"{op}: an index is out of range {where}")
    return wrapped


def _where(xp, data_shape, indices):
    """The index tuple of ``indices`` (negative counting from the end), refusing indices out of range."""
    q = indices.shape[-1]
    wrapped = checked_indices(xp, indices, xp.asarray(data_shape[:q], dtype=xp.int64), "GatherND",
                              f"for data of shape {tuple(data_shape)}")
    return tuple(wrapped[..., i] for i in range(q))


@kernel("GatherND")
def gather_nd(xp, inputs, params, attrs, ctx):
    data, indices = inputs
    return data[_where(xp, data.shape, indices)]


@backward("GatherND", keeps=("inputs",))
def gather_nd_backward(xp, grad, saved, params, attrs):
    data, indices = saved.inputs
    q = indices.shape[-1]
    rows = int(np.prod(data.shape[:q]))
    width = int(np.prod(data.shape[q:], dtype=np.int64))
    flat = xp.ravel_multi_index(_where(xp, data.shape, indices), data.shape[:q]).reshape(-1, 1)
    slots = (flat * width + xp.arange(width)).ravel()
    # bincount sums the rows picked more than once (ufunc.at is not on every backend)
    dx = xp.bincount(slots, weights=grad.reshape(-1), minlength=rows * width)
    return [dx.reshape(data.shape).astype(data.dtype), None], {}
