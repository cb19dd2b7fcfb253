"""Sliding-window views (im2col) and their scatter-add inverse (col2im), shared by conv and pooling.

Arrays are (N, C, *spatial) with one, two or three spatial axes (L; H, W; D, H, W), and padding is
ordered as ONNX orders it: the begins, then the ends ((top, left, bottom, right) in 2-D). The
views are zero-copy ``as_strided`` windows of shape (N, C, *kernel, *out); callers reshape them
into GEMM operands, which makes exactly one copy. ``unwindows`` is the adjoint of padding then
windowing, the way back for transposed convolution and for the gradients of convolution and
pooling. No Python loop runs over pixels or channels; col2im loops over the kernel's taps only.
"""

from __future__ import annotations

import itertools

from cnngraph.ops.base import padded_size

WHOLE = slice(None)


def pad_spatial(xp, x, pads, value=0.0):
    """Pad the spatial axes of an (N, C, *spatial) array by (begins..., ends...) with ``value``: the array
    copied into the middle of a fresh one, the borders filled, each element written once. ``numpy.pad``'s
    bookkeeping cost 17 to 21 µs more a call on ResNet's batch-1 activations (a run pads 18 of them)."""
    if not any(pads):
        return x
    r = len(pads) // 2
    size = x.shape[2:]
    out = xp.empty((*x.shape[:2], *padded_size(size, pads)), dtype=x.dtype)
    out[(WHOLE, WHOLE, *(slice(b, b + n) for b, n in zip(pads[:r], size)))] = x
    for axis, (begin, end) in enumerate(zip(pads[:r], pads[r:]), start=2):
        out[(WHOLE,) * axis + (slice(0, begin),)] = value
        out[(WHOLE,) * axis + (slice(out.shape[axis] - end, None),)] = value
    return out


def windows(xp, x, kernel, stride, dilation, out_size):
    """A view of shape (N, C, *kernel, *out_size) over an already padded (N, C, *spatial) array."""
    s_n, s_c, *s_spatial = x.strides
    steps = tuple(s * d for s, d in zip(s_spatial, dilation)) + tuple(s * t for s, t in zip(s_spatial, stride))
    return xp.lib.stride_tricks.as_strided(
        x, shape=(*x.shape[:2], *kernel, *out_size), strides=(s_n, s_c, *steps)
    )


def taps(kernel):
    """Every kernel position, as an index tuple (ki, kj, ...), in C order."""
    return itertools.product(*(range(k) for k in kernel))


def tap(view, position):
    """The (N, C, *out) slice of a window view at one kernel position."""
    return view[(WHOLE, WHOLE, *position)]


def col2im(xp, cols, out_shape, kernel, stride, dilation):
    """Scatter-add (N, C, *kernel, *size) columns into a zeroed (N, C, *padded) array.

    Column i of tap k lands at position i*stride + k*dilation along each axis: the adjoint of
    ``windows``. Used by transposed convolution and by convolution backward.
    """
    size = cols.shape[2 + len(kernel):]
    out = xp.zeros(out_shape, dtype=cols.dtype)
    for position in taps(kernel):
        target = tuple(slice(k * d, k * d + (n - 1) * s + 1, s)
                       for k, d, n, s in zip(position, dilation, size, stride))
        out[(WHOLE, WHOLE, *target)] += tap(cols, position)
    return out


def unwindows(xp, cols, shape, pads, kernel, stride, dilation):
    """Adjoint of ``windows(pad_spatial(x, pads))``: scatter-add (N, C, *kernel, *out) columns onto an
    (N, C, *spatial) array of ``shape``; what lands in the padding is dropped."""
    full = col2im(xp, cols, (*shape[:2], *padded_size(shape[2:], pads)), kernel, stride, dilation)
    return unpadded(full, pads, shape)


def unpadded(full, pads, shape):
    """The (N, C, *spatial) ``shape`` region of an array padded by ``pads`` (a view)."""
    r = len(pads) // 2
    return full[(WHOLE, WHOLE, *(slice(b, b + n) for b, n in zip(pads[:r], shape[2:])))]
