"""Pooling over zero-copy sliding-window views; adaptive pooling as two small averaging GEMMs."""

from __future__ import annotations

from cnngraph.backends.kernels import kernel
from cnngraph.backends.kernels.windows import pad2d, windows
from cnngraph.ops.pool import adaptive_bounds, dilation_of, pooled_size


def _pool_windows(xp, x, attrs, fill):
    """(N, C, kh, kw, OH, OW) view of ``x`` padded with ``fill``.

    The end padding is extended where ceil_mode lets the last window hang past the padded input.
    """
    hw, out_hw = x.shape[2:], pooled_size(attrs, x.shape[2:])
    ksize, stride, dilation = attrs["kernel_size"], attrs["stride"], dilation_of(attrs)
    pt, pl, pb, pr = attrs["padding"]
    ends = [
        max(p_end, (o - 1) * s + d * (k - 1) + 1 - n - p_begin)
        for n, o, k, s, d, p_begin, p_end in zip(hw, out_hw, ksize, stride, dilation, (pt, pl), (pb, pr))
    ]
    padded = pad2d(xp, x, (pt, pl, *ends), fill)
    return windows(xp, padded, ksize, stride, dilation, out_hw)


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
    return _pool_windows(xp, inputs[0], attrs, float("-inf")).max(axis=(2, 3))


@kernel("AvgPool2d")
def avg_pool2d(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    total = _pool_windows(xp, x, attrs, 0.0).sum(axis=(2, 3))
    return total / _divisor(xp, attrs, x.shape[2:], total.shape[2:]).astype(x.dtype)


@kernel("GlobalAvgPool")
def global_avg_pool(xp, inputs, params, attrs, ctx):
    return inputs[0].mean(axis=(2, 3), keepdims=True)


def _averaging_matrix(xp, size, out, dtype):
    """(out, size) matrix whose row i averages PyTorch's adaptive cell i."""
    bounds = xp.asarray(adaptive_bounds(size, out))
    start, end = bounds[:, :1], bounds[:, 1:]
    cols = xp.arange(size)
    return (((cols >= start) & (cols < end)) / (end - start)).astype(dtype)


@kernel("AdaptiveAvgPool2d")
def adaptive_avg_pool2d(xp, inputs, params, attrs, ctx):
    """Cells are separable, so rows then columns: A_h @ x @ A_w^T."""
    x = inputs[0]
    (h, w), (oh, ow) = x.shape[2:], attrs["output_size"]
    rows = _averaging_matrix(xp, h, oh, x.dtype)
    cols = _averaging_matrix(xp, w, ow, x.dtype)
    return xp.matmul(xp.matmul(rows, x), cols.T)
