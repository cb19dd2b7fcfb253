"""MaxPool2dIndices (argmax over the pool's window view) and MaxUnpool2d (one scatter per plane)."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.pool import pool_windows
from cnngraph.ops.pool import dilation_of


@kernel("MaxPool2dIndices")
def max_pool2d_indices(xp, inputs, params, attrs, ctx):
    """The first maximal tap of each window, turned into row * W + column of the unpadded input."""
    x = inputs[0]
    h, w = x.shape[2:]
    view = pool_windows(xp, x, attrs, float("-inf"))
    n, c, kh, kw, oh, ow = view.shape
    tap = view.reshape(n, c, kh * kw, oh, ow).argmax(axis=2)
    (sh, sw), (dh, dw), (pt, pl) = attrs["stride"], dilation_of(attrs), attrs["padding"][:2]
    rows = xp.arange(oh).reshape(oh, 1) * sh - pt + (tap // kw) * dh
    cols = xp.arange(ow).reshape(1, ow) * sw - pl + (tap % kw) * dw
    return (rows * w + cols).astype(xp.int64)


@kernel("MaxUnpool2d")
def max_unpool2d(xp, inputs, params, attrs, ctx):
    x, indices = inputs
    n, c = x.shape[:2]
    oh, ow = attrs["output_size"]
    out = xp.zeros((n * c, oh * ow), dtype=x.dtype)
    planes = xp.arange(n * c).reshape(-1, 1)
    out[planes, indices.reshape(n * c, -1)] = x.reshape(n * c, -1)
    return out.reshape(n, c, oh, ow)


@backward("MaxPool2dIndices")
def max_pool2d_indices_backward(xp, grad, saved, params, attrs):
    """Integer positions: no gradient flows through them (the values' MaxPool2d carries it)."""
    return [None], {}


@backward("MaxUnpool2d", keeps=("inputs",))
def max_unpool2d_backward(xp, grad, saved, params, attrs):
    """Each input element was written to one output position, so its gradient is read back from there."""
    x, indices = saved.inputs
    n, c = x.shape[:2]
    planes = xp.arange(n * c).reshape(-1, 1)
    return [grad.reshape(n * c, -1)[planes, indices.reshape(n * c, -1)].reshape(x.shape), None], {}
