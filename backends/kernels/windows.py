"""Sliding-window views (im2col) and their scatter-add inverse (col2im), shared by conv and pooling.

The views are zero-copy ``as_strided`` windows; callers reshape them into GEMM operands, which
makes exactly one copy. ``unwindows`` is the adjoint of padding then windowing, the way back for
transposed convolution and for the gradients of convolution and pooling. No Python loop runs over pixels or channels; col2im loops over the
kernel's taps only.
"""

from __future__ import annotations


def pad2d(xp, x, pads, value=0.0):
    """Pad the two spatial axes of an NCHW array by (top, left, bottom, right)."""
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    return xp.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), mode="constant", constant_values=value)


def windows(xp, x, kernel, stride, dilation, out_hw):
    """A view of shape (N, C, kh, kw, OH, OW) over an already padded NCHW array."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    s_n, s_c, s_h, s_w = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, kh, kw, oh, ow), strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw)
    )


def col2im(xp, cols, out_shape, kernel, stride, dilation):
    """Scatter-add (N, C, kh, kw, H, W) columns into a zeroed (N, C, Hp, Wp) array.

    Column (i, j) of tap (ki, kj) lands at row i*sh + ki*dh, column j*sw + kj*dw: the adjoint
    of ``windows``. Used by transposed convolution and by convolution backward.
    """
    n, c, kh, kw, h, w = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = xp.zeros(out_shape, dtype=cols.dtype)
    for ki in range(kh):
        for kj in range(kw):
            r0, c0 = ki * dh, kj * dw
            out[:, :, r0 : r0 + (h - 1) * sh + 1 : sh, c0 : c0 + (w - 1) * sw + 1 : sw] += cols[:, :, ki, kj]
    return out


def unwindows(xp, cols, shape, pads, kernel, stride, dilation):
    """Adjoint of ``windows(pad2d(x, pads))``: scatter-add (N, C, kh, kw, OH, OW) columns onto an
    (N, C, H, W) array of ``shape``; what lands in the padding is dropped."""
    n, c, h, w = shape
    pt, pl, pb, pr = pads
    full = col2im(xp, cols, (n, c, h + pt + pb, w + pl + pr), kernel, stride, dilation)
    return full[:, :, pt : pt + h, pl : pl + w]
