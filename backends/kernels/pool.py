"""Pooling over zero-copy sliding-window views; adaptive pooling as two small averaging GEMMs.

Gradients go back through the adjoint of the window view (col2im over the kernel's taps): max
pooling sends each output's gradient to its argmax (the first maximum, as PyTorch), average pooling
spreads it evenly over the window.
"""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.separable import separable, separable_backward
from cnngraph.backends.kernels.windows import pad2d, unwindows, windows
from cnngraph.ops.pool import adaptive_bounds, dilation_of, pooled_size


def _pool_geometry(attrs, hw):
    """Padding (top, left, bottom, right) and output size of a pool over an input of spatial size ``hw``.

    The end padding is extended where ceil_mode lets the last window hang past the padded input.
    """
    out_hw = pooled_size(attrs, hw)
    pt, pl, pb, pr = attrs["padding"]
    ends = [
        max(p_end, (o - 1) * s + d * (k - 1) + 1 - n - p_begin)
        for n, o, k, s, d, p_begin, p_end in zip(
            hw, out_hw, attrs["kernel_size"], attrs["stride"], dilation_of(attrs), (pt, pl), (pb, pr)
        )
    ]
    return (pt, pl, *ends), out_hw


def pool_windows(xp, x, attrs, fill):
    """(N, C, kh, kw, OH, OW) view of ``x`` padded with ``fill``."""
    pads, out_hw = _pool_geometry(attrs, x.shape[2:])
    return windows(xp, pad2d(xp, x, pads, fill), attrs["kernel_size"], attrs["stride"], dilation_of(attrs), out_hw)


def _unpool(xp, cols, shape, attrs):
    """Adjoint of ``pool_windows``: (N, C, kh, kw, OH, OW) columns summed back onto an input of ``shape``."""
    pads, _ = _pool_geometry(attrs, shape[2:])
    return unwindows(xp, cols, shape, pads, attrs["kernel_size"], attrs["stride"], dilation_of(attrs))


def _reduce_taps(view, ufunc):
    """Reduce the (kh, kw) window axes one tap at a time: each tap is a strided (N, C, OH, OW) slice,
    which streams several times faster than one reduction over two non-contiguous axes."""
    out = view[:, :, 0, 0].copy()
    kh, kw = view.shape[2:4]
    for i in range(kh):
        for j in range(kw):
            if i or j:
                ufunc(out, view[:, :, i, j], out=out)
    return out


def _divisor(xp, attrs, hw, out_hw):
    """Elements each window averages: the window clipped to the padded input (count_include_pad) or to
    the real input (without). A (OH, OW) outer product of per-axis counts."""
    pads = attrs["padding"]
    counts = []
    for n, o, k, s, p_begin, p_end in zip(hw, out_hw, attrs["kernel_size"], attrs["stride"], pads[:2], pads[2:]):
        lo, hi = (0, p_begin + n + p_end) if attrs["count_include_pad"] else (p_begin, p_begin + n)
        start = xp.arange(o) * s
        counts.append(xp.minimum(start + k, hi) - xp.maximum(start, lo))
    return counts[0][:, None] * counts[1][None, :]


@kernel("MaxPool2d")
def max_pool2d(xp, inputs, params, attrs, ctx):
    """In inference a plain max over the window view; for backward, the argmax tap of each window
    (a small integer) is stashed as well, tracked tap by tap like the max itself. The first maximum
    wins, as in PyTorch, and a NaN counts as the maximum, as in ``argmax``."""
    view = pool_windows(xp, inputs[0], attrs, float("-inf"))
    if ctx.stash is None:
        return _reduce_taps(view, xp.maximum)
    kh, kw = view.shape[2:4]
    best = view[:, :, 0, 0].copy()
    argmax = xp.zeros(best.shape, dtype=xp.uint8 if kh * kw <= 256 else xp.int32)
    for t in range(1, kh * kw):
        tap = view[:, :, t // kw, t % kw]
        better = (tap > best) | (xp.isnan(tap) & ~xp.isnan(best))
        xp.maximum(best, tap, out=best)  # propagates NaN, as the argmax above counts it
        xp.copyto(argmax, t, where=better)
    ctx.stash["argmax"] = argmax
    return best


@backward("MaxPool2d")
def max_pool2d_backward(xp, grad, saved, params, attrs):
    n, c, oh, ow = grad.shape
    kh, kw = attrs["kernel_size"]
    hit = saved.stash["argmax"][:, :, None] == xp.arange(kh * kw).reshape(1, 1, -1, 1, 1)
    cols = xp.where(hit, grad[:, :, None], 0).reshape(n, c, kh, kw, oh, ow)
    return [_unpool(xp, cols, saved.shapes[0], attrs)], {}


@kernel("AvgPool2d")
def avg_pool2d(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    total = _reduce_taps(pool_windows(xp, x, attrs, 0.0), xp.add)
    return total / _divisor(xp, attrs, x.shape[2:], total.shape[2:]).astype(x.dtype)


@backward("AvgPool2d")
def avg_pool2d_backward(xp, grad, saved, params, attrs):
    shape = saved.shapes[0]
    n, c, oh, ow = grad.shape
    share = grad / _divisor(xp, attrs, shape[2:], (oh, ow)).astype(grad.dtype)
    cols = xp.broadcast_to(share[:, :, None, None], (n, c, *attrs["kernel_size"], oh, ow))
    return [_unpool(xp, cols, shape, attrs)], {}


@kernel("GlobalAvgPool")
def global_avg_pool(xp, inputs, params, attrs, ctx):
    return inputs[0].mean(axis=(2, 3), keepdims=True)


@backward("GlobalAvgPool")
def global_avg_pool_backward(xp, grad, saved, params, attrs):
    shape = saved.shapes[0]
    return [xp.broadcast_to(grad / (shape[2] * shape[3]), shape)], {}


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
