"""Linear maps of H and W that act on each axis by a matrix: out = A_h @ x @ A_w^T.

Adaptive pooling, resizing and padding are all of this form, so each backward is the same product
with the transposed matrices; gathers (nearest resizing, reflect/edge padding) become one-hot matrices.
"""

from __future__ import annotations


def separable(xp, x, rows, cols):
    """Apply ``rows`` (OH, H) to axis 2 and ``cols`` (OW, W) to axis 3 of an NCHW array."""
    return xp.matmul(xp.matmul(rows, x), cols.T)


def separable_backward(xp, grad, rows, cols):
    """Gradient w.r.t. x of ``separable(x, rows, cols)``: the transposed matrices applied to ``grad``."""
    return separable(xp, grad, rows.T, cols.T)


def one_hot(xp, index, n, dtype):
    """(len(index), n) matrix with a 1 at column index[i] of row i; rows with an index outside [0, n) are 0."""
    return (index[:, None] == xp.arange(n)).astype(dtype)
