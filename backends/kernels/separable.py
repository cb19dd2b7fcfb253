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


def along_axes(xp, x, matrices):
    """Apply matrix k (O_k, N_k) to spatial axis k of an (N, C, *spatial) array, any number of axes:
    the N-d form of ``separable``, which 2-D callers keep for its two plain matmuls."""
    if len(matrices) == 2:
        return separable(xp, x, *matrices)
    for axis, m in enumerate(matrices, start=2):
        x = xp.moveaxis(xp.matmul(m, xp.moveaxis(x, axis, -2)), -2, axis)
    return x


def one_hot(xp, index, n, dtype):
    """(len(index), n) matrix with a 1 at column index[i] of row i; rows with an index outside [0, n) are 0."""
    return (index[:, None] == xp.arange(n)).astype(dtype)
