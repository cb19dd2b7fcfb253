"""Shape kernels: views wherever the layout allows, copies only for Concat and Pad.

Their gradients need only the input shapes: reshape back, split, scatter into zeros, or (for Pad)
the transposed per-axis index map.
"""

from __future__ import annotations

import itertools
import math

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.separable import one_hot, separable_backward
from cnngraph.backends.kernels.windows import pad_spatial


@kernel("Flatten")
def flatten(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: a batch of 0 stays valid


@kernel("Reshape")
def reshape(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return x.reshape(x.shape[0], *attrs["shape"])


@backward("Flatten")
@backward("Reshape")
def reshape_backward(xp, grad, saved, params, attrs):
    return [grad.reshape(saved.shapes[0])], {}


@kernel("Concat")
def concat(xp, inputs, params, attrs, ctx):
    return xp.concatenate(inputs, axis=attrs["axis"])


@backward("Concat")
def concat_backward(xp, grad, saved, params, attrs):
    axis = attrs["axis"]
    ends = list(itertools.accumulate(shape[axis] for shape in saved.shapes))
    return xp.split(grad, ends[:-1], axis=axis), {}


def _slices(attrs, ndim):
    index = [slice(None)] * ndim
    for a, s, e, st in zip(attrs["axes"], attrs["starts"], attrs["ends"], attrs["steps"]):
        index[a] = slice(s, e, st)
    return tuple(index)


@kernel("Slice")
def slice_(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return x[_slices(attrs, x.ndim)]


@backward("Slice")
def slice_backward(xp, grad, saved, params, attrs):
    shape = saved.shapes[0]
    dx = xp.zeros(shape, dtype=grad.dtype)
    dx[_slices(attrs, len(shape))] = grad
    return [dx], {}


@kernel("Pad")
def pad(xp, inputs, params, attrs, ctx):
    if attrs["mode"] == "constant":
        return pad_spatial(xp, inputs[0], attrs["padding"], attrs["value"])
    pt, pl, pb, pr = attrs["padding"]
    return xp.pad(inputs[0], ((0, 0), (0, 0), (pt, pb), (pl, pr)), mode=attrs["mode"])


def _pad_matrix(xp, n, before, after, mode, dtype):
    """(before + n + after, n) matrix of padding one axis: row i picks the input that position i copies.

    The map comes from padding the indices themselves with the same mode; constant padding marks its
    positions -1, which one_hot turns into zero rows (they hold the constant, not an input).
    """
    fill = {"constant_values": -1} if mode == "constant" else {}
    return one_hot(xp, xp.pad(xp.arange(n), (before, after), mode=mode, **fill), n, dtype)


@backward("Pad")
def pad_backward(xp, grad, saved, params, attrs):
    (_, _, h, w), (pt, pl, pb, pr) = saved.shapes[0], attrs["padding"]
    rows = _pad_matrix(xp, h, pt, pb, attrs["mode"], grad.dtype)
    cols = _pad_matrix(xp, w, pl, pr, attrs["mode"], grad.dtype)
    return [separable_backward(xp, grad, rows, cols)], {}


@kernel("Identity")
def identity(xp, inputs, params, attrs, ctx):
    return inputs[0]


@backward("Identity")
def identity_backward(xp, grad, saved, params, attrs):
    return [grad], {}
