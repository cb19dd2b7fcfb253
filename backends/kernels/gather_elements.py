"""GatherElements: take_along_axis; its backward adds each gradient element back where it was taken from."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.gather_nd import checked_indices


def _positions(xp, data_shape, indices, axis):
    """Whole, in-range int64 indices along ``axis`` (negative ones counted from the end)."""
    return checked_indices(xp, indices, data_shape[axis], "GatherElements",
                           f"for axis {axis} of size {data_shape[axis]}")


@kernel("GatherElements")
def gather_elements(xp, inputs, params, attrs, ctx):
    data, indices = inputs
    return xp.take_along_axis(data, _positions(xp, data.shape, indices, attrs["axis"]), axis=attrs["axis"])


@backward("GatherElements", keeps=("inputs",))
def gather_elements_backward(xp, grad, saved, params, attrs):
    data, indices = saved.inputs
    axis = attrs["axis"]
    where = list(xp.indices(indices.shape))  # dense: CuPy's indices has no sparse form
    where[axis] = _positions(xp, data.shape, indices, axis)
    flat = xp.ravel_multi_index(tuple(where), data.shape).ravel()
    # bincount sums elements taken more than once (ufunc.at is not on every backend)
    dx = xp.bincount(flat, weights=grad.reshape(-1), minlength=data.size)
    return [dx.reshape(data.shape).astype(data.dtype), None], {}
