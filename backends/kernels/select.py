"""Gradients that pass where a mask holds and are zero elsewhere (ReLU's, max pooling's), as bit masks.

``where(keep, grad, 0)`` measured 6x slower than a multiply on NumPy 2.4 in float32 (24 ms against 4 ms
for 6.4 M values, one thread), and ReLU's backward runs it over every activation. A multiply by the
mask is fast but not the same: a NaN or an infinite gradient where the mask is off would give NaN,
not 0 (a loss-scaled step that overflowed past a ReLU would be poisoned where PyTorch's
``threshold_backward`` gives 0). ANDing the gradient's bits with all-ones or all-zeros is exact
(every value passes or becomes +0.0) at a multiply's speed.
"""

from __future__ import annotations


def kept_or_zero(xp, grad, keep, out=None):
    """``where(keep, grad, 0)`` for a boolean ``keep`` at least as large as ``grad`` (``grad`` broadcasts), exactly;
    into ``out`` (of ``keep``'s shape and ``grad``'s dtype) when given."""
    bits = xp.dtype(f"i{grad.dtype.itemsize}")
    ones = xp.negative(keep.view(xp.int8), dtype=bits)  # True -> -1, every bit set; False -> 0
    return xp.bitwise_and(grad.view(bits), ones, out=ones if out is None else out.view(bits)).view(grad.dtype)
