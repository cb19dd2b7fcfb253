"""Pooling over zero-copy sliding-window views; adaptive pooling as two small averaging GEMMs.

Gradients go back through the adjoint of the window view (col2im over the kernel's taps): max
pooling sends each output's gradient to its argmax (the first maximum, as PyTorch), tap by tap into
the padded input's phase planes (``phases``, as its training forward reads them), average pooling
spreads it evenly over the window.
"""

from __future__ import annotations

import math

from cnngraph.backends.chunks import over_parts
from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.separable import separable, separable_backward
from cnngraph.backends.kernels.phases import Phases
from cnngraph.backends.kernels.select import kept_or_zero
from cnngraph.backends.kernels.windows import WHOLE, pad_spatial, taps, unpadded, unwindows, windows
from cnngraph.ops.base import padded_size
from cnngraph.ops.pool import adaptive_bounds, dilation_of, pooled_size


def _pool_geometry(attrs, size):
    """Padding (begins..., ends...) and output size of a pool over an input of spatial ``size``.

    The end padding is extended where ceil_mode lets the last window hang past the padded input.
    """
    out_size = pooled_size(attrs, size)
    r = len(size)
    begins, ends = attrs["padding"][:r], attrs["padding"][r:]
    ends = [
        max(p_end, (o - 1) * s + d * (k - 1) + 1 - n - p_begin)
        for n, o, k, s, d, p_begin, p_end in zip(
            size, out_size, attrs["kernel_size"], attrs["stride"], dilation_of(attrs), begins, ends
        )
    ]
    return (*begins, *ends), out_size


def pool_windows(xp, x, attrs, fill):
    """(N, C, *kernel, *out) view of ``x`` padded with ``fill``."""
    pads, out_size = _pool_geometry(attrs, x.shape[2:])
    return windows(xp, pad_spatial(xp, x, pads, fill), attrs["kernel_size"], attrs["stride"], dilation_of(attrs),
                   out_size)


def pool_taps(xp, x, attrs, fill):
    """Per kernel position, the (N, C, *out) slice of ``x`` padded with ``fill`` that it reads, each with
    unit-stride rows (``Phases``)."""
    pads, out_size = _pool_geometry(attrs, x.shape[2:])
    planes = Phases.split(xp, pad_spatial(xp, x, pads, fill), attrs["stride"])
    return [planes.tap(position, dilation_of(attrs), out_size) for position in taps(attrs["kernel_size"])]


def _unpool(xp, cols, shape, attrs):
    """Adjoint of padding then windowing: (N, C, *kernel, *out) columns summed back onto an input of ``shape``."""
    pads, _ = _pool_geometry(attrs, shape[2:])
    return unwindows(xp, cols, shape, pads, attrs["kernel_size"], attrs["stride"], dilation_of(attrs))


def _reduce_separable(xp, x, attrs, fill, ufunc):
    """Max or sum over every window, one spatial axis at a time (a box's max or sum is separable): per
    axis, ``ufunc`` over the kernel's k strided slices of that axis. No window view is materialised or
    walked tap by tap: on ResNet's 3x3/2 max pool this took a third of the tap-by-tap reduction's CPU time
    at batch 8, three quarters at batch 1. The outermost axis first: its slices keep unit-stride rows, so
    the strided innermost pass runs on the already reduced rows (ResNet's max pool, the kernel's time in
    one process, best of 40, twice each: 0.54 against 0.60 ms at batch 1, 7.5 against 8.2 at batch 8)."""
    pads, out_size = _pool_geometry(attrs, x.shape[2:])
    y, fresh = pad_spatial(xp, x, pads, fill), False
    geometry = zip(attrs["kernel_size"], attrs["stride"], dilation_of(attrs), out_size)
    for axis, (k, s, d, o) in enumerate(geometry, start=2):
        shifted = [y[(WHOLE,) * axis + (slice(t * d, t * d + (o - 1) * s + 1, s),)] for t in range(k)]
        if k == 1:
            y = shifted[0]
            continue
        y, fresh = ufunc(shifted[0], shifted[1]), True
        for more in shifted[2:]:
            ufunc(y, more, out=y)
    return y if fresh else y.copy()  # a 1x1 window: a strided view of the input, not the op's own array


def _divisor(xp, attrs, size, out_size):
    """Elements each window averages: the window clipped to the padded input (count_include_pad) or to
    the real input (without). The outer product of per-axis counts, shaped like the output's spatial axes."""
    r = len(size)
    pads = attrs["padding"]
    total = 1
    for axis, (n, o, k, s, p_begin, p_end) in enumerate(
        zip(size, out_size, attrs["kernel_size"], attrs["stride"], pads[:r], pads[r:])
    ):
        lo, hi = (0, p_begin + n + p_end) if attrs["count_include_pad"] else (p_begin, p_begin + n)
        start = xp.arange(o) * s
        count = xp.minimum(start + k, hi) - xp.maximum(start, lo)
        total = total * count.reshape((-1,) + (1,) * (r - 1 - axis))
    return total


def _by_images(xp, x, work, passes):
    """``work(chunk)`` over chunks of ``x``'s images, on every core (``over_parts``)."""
    over_parts(xp, work, x.shape[0], x[:1].size * x.itemsize, x.size, passes)


@kernel("MaxPool2d")
def max_pool2d(xp, inputs, params, attrs, ctx):
    """In inference a separable max (``_reduce_separable``); for backward, the max over the taps of the phase
    planes (``pool_taps``) and the argmax tap of each window (a small integer) stashed as well: the first
    tap equal to the maximum, as in PyTorch, where a NaN counts as the maximum, as in ``argmax``
    (``maximum`` propagates it). A few images at a time, on every core."""
    x = inputs[0]
    n, c = x.shape[:2]
    _, out_size = _pool_geometry(attrs, x.shape[2:])
    best = xp.empty((n, c, *out_size), dtype=x.dtype)
    taps_count = math.prod(attrs["kernel_size"])
    if ctx.stash is None:  # chunks of channels, which pool independently: at batch 1 every core has some
        planes, pooled_planes = x.reshape(n * c, 1, *x.shape[2:]), best.reshape(n * c, 1, *out_size)

        def pooled(chunk):
            pooled_planes[chunk] = _reduce_separable(xp, planes[chunk], attrs, float("-inf"), xp.maximum)

        over_parts(xp, pooled, n * c, planes[:1].size * x.itemsize, x.size, len(out_size) + 1)
        return best
    argmax = xp.empty(best.shape, dtype=xp.uint8 if taps_count <= 256 else xp.int32)

    def pooled_with_argmax(chunk):
        slices = pool_taps(xp, x[chunk], attrs, float("-inf"))
        xp.copyto(best[chunk], slices[0])
        for value in slices[1:]:
            xp.maximum(best[chunk], value, out=best[chunk])
        _first_hit(xp, slices, best[chunk], argmax[chunk])

    _by_images(xp, x, pooled_with_argmax, passes=5 * taps_count)
    ctx.stash["argmax"] = argmax
    return best


def _first_hit(xp, slices, best, argmax):
    """Per window, into ``argmax``, the index of the first slice equal to ``best`` (or NaN where ``best`` is):
    the taps are visited last to first, each overwriting the windows it hits, so the first hit is written
    last."""
    argmax[...] = 0
    hit, step = xp.empty(best.shape, dtype=bool), xp.empty_like(argmax)
    nan = bool(xp.isnan(best).any())
    for t in reversed(range(len(slices))):
        xp.equal(slices[t], best, out=hit)
        if nan:
            hit |= xp.isnan(slices[t])
        xp.subtract(t, argmax, out=step)  # argmax = where(hit, t, argmax), without where's slow loop
        step *= hit
        argmax += step


@backward("MaxPool2d")
def max_pool2d_backward(xp, grad, saved, params, attrs):
    """Each tap adds the gradients of the windows whose argmax it is into its slice of the padded input's
    phase planes: one (N, C, *out) pass per tap, never the (N, C, *kernel, *out) columns. A few images at
    a time, on every core."""
    shape, argmax = saved.shapes[0], saved.stash["argmax"]
    pads, out_size = _pool_geometry(attrs, shape[2:])
    dx = xp.empty(shape, dtype=grad.dtype)

    def images(chunk):
        part = (len(argmax[chunk]), *shape[1:])
        full = (*part[:2], *padded_size(shape[2:], pads))
        planes = Phases.zeros(xp, full, attrs["stride"], grad.dtype)
        for t, position in enumerate(taps(attrs["kernel_size"])):
            planes.tap(position, dilation_of(attrs), out_size)[...] += kept_or_zero(xp, grad[chunk],
                                                                                    argmax[chunk] == t)
        dx[chunk] = unpadded(planes.merged(xp, full, grad.dtype), pads, part)

    _by_images(xp, dx, images, passes=4 * math.prod(attrs["kernel_size"]))
    return [dx], {}


@kernel("AvgPool2d")
def avg_pool2d(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    total = _reduce_separable(xp, x, attrs, 0.0, xp.add)
    return total / _divisor(xp, attrs, x.shape[2:], total.shape[2:]).astype(x.dtype)


@backward("AvgPool2d")
def avg_pool2d_backward(xp, grad, saved, params, attrs):
    shape = saved.shapes[0]
    n, c, *out_size = grad.shape
    kernel = attrs["kernel_size"]
    share = grad / _divisor(xp, attrs, shape[2:], out_size).astype(grad.dtype)
    cols = xp.broadcast_to(share[(WHOLE, WHOLE, *(None,) * len(kernel))], (n, c, *kernel, *out_size))
    return [_unpool(xp, cols, shape, attrs)], {}


@kernel("GlobalAvgPool")
def global_avg_pool(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


@backward("GlobalAvgPool")
def global_avg_pool_backward(xp, grad, saved, params, attrs):
    shape = saved.shapes[0]
    return [xp.broadcast_to(grad / math.prod(shape[2:]), shape)], {}


def _averaging_matrix(xp, size, out, dtype):
    """(out, size) matrix whose row i averages PyTorch's adaptive cell i."""
    bounds = xp.asarray(adaptive_bounds(size, out))
    start, end = bounds[:, :1], bounds[:, 1:]
    cols = xp.arange(size)
    return (((cols >= start) & (cols < end)) / (end - start)).astype(dtype)


def _adaptive_matrices(xp, hw, attrs, dtype):
    return [_averaging_matrix(xp, n, o, dtype) for n, o in zip(hw, attrs["output_size"])]


@kernel("AdaptiveAvgPool2d")
def adaptive_avg_pool2d(xp, inputs, params, attrs, ctx):
    """Cells are separable, so rows then columns: A_h @ x @ A_w^T."""
    x = inputs[0]
    return separable(xp, x, *_adaptive_matrices(xp, x.shape[2:], attrs, x.dtype))


@backward("AdaptiveAvgPool2d")
def adaptive_avg_pool2d_backward(xp, grad, saved, params, attrs):
    rows, cols = _adaptive_matrices(xp, saved.shapes[0][2:], attrs, grad.dtype)
    return [separable_backward(xp, grad, rows, cols)], {}
