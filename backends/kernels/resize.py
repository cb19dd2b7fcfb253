"""Upsample as gathers along each spatial axis in turn with index arrays (linear interpolation is
separable): no per-pixel loops, over one, two or three spatial axes.

Resizing is linear and acts on each axis separately, so its gradient is the transposed per-axis
matrix (one-hot rows for nearest, two weights per row for bilinear) applied to the output gradient.
"""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.separable import along_axes, one_hot
from cnngraph.ops.resize import size_given


def _nearest_index(xp, n, o, scale):
    """ONNX asymmetric + floor (torch's nearest): src = floor(dst / scale).

    When the scale is out/in the index is computed in exact integers, where float division could
    land just below a whole number and pick the previous pixel.
    """
    dst = xp.arange(o)
    if size_given(o, n, scale):
        return dst * n // o
    return xp.minimum(xp.floor(dst / scale).astype(xp.int64), n - 1)


def _linear_taps(xp, n, o, scale, align_corners):
    """Left and right neighbours and the right one's weight, clamped at the edges like torch.

    align_corners maps corner to corner; otherwise half-pixel centres, src = (dst + 0.5) / scale - 0.5.
    """
    dst = xp.arange(o, dtype=xp.float64)
    if align_corners:
        src = dst * ((n - 1) / (o - 1) if o > 1 else 0.0)
    else:
        src = xp.maximum((dst + 0.5) / scale - 0.5, 0.0)
    left = xp.minimum(xp.floor(src).astype(xp.int64), n - 1)
    return left, xp.minimum(left + 1, n - 1), src - left


def _lerp(xp, x, axis, left, right, weight):
    shape = [1] * x.ndim
    shape[axis] = -1
    a, b = xp.take(x, left, axis=axis), xp.take(x, right, axis=axis)
    return a + (b - a) * weight.astype(x.dtype).reshape(shape)


@kernel("Upsample")
def upsample(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    for axis, n, o, scale in zip(range(2, x.ndim), x.shape[2:], attrs["size"], attrs["scale_factor"]):
        if attrs["mode"] == "nearest":
            x = xp.take(x, _nearest_index(xp, n, o, scale), axis=axis)
        else:
            x = _lerp(xp, x, axis, *_linear_taps(xp, n, o, scale, attrs["align_corners"]))
    return x


def _axis_matrix(xp, n, o, scale, attrs, dtype):
    """(o, n) matrix of the resize along one axis: output i = row i . input."""
    if attrs["mode"] == "nearest":
        return one_hot(xp, _nearest_index(xp, n, o, scale), n, dtype)
    left, right, weight = _linear_taps(xp, n, o, scale, attrs["align_corners"])
    weight = weight.astype(dtype)[:, None]
    return one_hot(xp, left, n, dtype) * (1 - weight) + one_hot(xp, right, n, dtype) * weight


@backward("Upsample")
def upsample_backward(xp, grad, saved, params, attrs):
    transposed = [
        _axis_matrix(xp, n, o, scale, attrs, grad.dtype).T
        for n, o, scale in zip(saved.shapes[0][2:], attrs["size"], attrs["scale_factor"])
    ]
    return [along_axes(xp, grad, transposed)], {}
