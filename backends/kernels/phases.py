"""Strided windows as unit-stride slices: a padded array split once by position modulo the stride.

A window view's tap (``windows.tap``) of a stride-2 pooling reads every other element: NumPy's loops
then run without SIMD, and one comparison over such a slice took 4.5 ms where the same values
contiguous took 0.6 ms ((8, 64, 56, 56) float32, one thread). Splitting the padded input into
stride^r phase planes (one strided copy of it) turns each tap into a contiguous-rowed slice of one
plane, and max pooling's nine taps read those instead. The way back is the same: gradients are
added into zeroed planes tap by tap, then the planes are written into their places once.
"""

from __future__ import annotations

import itertools

from cnngraph.backends.kernels.windows import WHOLE


class Phases:
    """The planes of an (N, C, *spatial) padded array: plane ``a`` (one offset per spatial axis) holds the
    positions ``a + i * stride``. With stride 1 the only plane is the array itself."""

    def __init__(self, planes: dict, stride: tuple[int, ...]):
        self.planes, self.stride = planes, stride

    @classmethod
    def split(cls, xp, padded, stride):
        """The planes of ``padded``, each a contiguous copy (no copy where the stride is 1)."""
        return cls({a: xp.ascontiguousarray(padded[_selection(a, stride)]) for a in _offsets(stride)}, stride)

    @classmethod
    def zeros(cls, xp, shape, stride, dtype):
        """Zeroed planes of an array of ``shape``, to add gradients into."""
        planes = {a: xp.zeros((*shape[:2], *(len(range(o, n, s)) for o, n, s in zip(a, shape[2:], stride))),
                              dtype=dtype) for a in _offsets(stride)}
        return cls(planes, stride)

    def tap(self, position, dilation, out_size):
        """The (N, C, *out_size) view that a window view's tap at kernel ``position`` is: window ``i`` reads
        ``i * stride + k * dilation`` along each axis, which lies in plane ``(k * dilation) % stride``."""
        offsets = [k * d for k, d in zip(position, dilation)]
        plane = self.planes[tuple(o % s for o, s in zip(offsets, self.stride))]
        return plane[(WHOLE, WHOLE, *(slice(o // s, o // s + n) for o, s, n in zip(offsets, self.stride, out_size)))]

    def merged(self, xp, shape, dtype):
        """The array of ``shape`` the planes split: each plane written back into its positions."""
        if len(self.planes) == 1:
            return next(iter(self.planes.values()))
        out = xp.empty(shape, dtype=dtype)
        for a, plane in self.planes.items():
            out[_selection(a, self.stride)] = plane
        return out


def _offsets(stride):
    return itertools.product(*(range(s) for s in stride))


def _selection(offset, stride):
    return (WHOLE, WHOLE, *(slice(o, None, s) for o, s in zip(offset, stride)))
