"""Conv2d as im2col + one batched GEMM per conv; ConvTranspose2d as GEMM + col2im."""

from __future__ import annotations

from cnngraph.backends.kernels import kernel
from cnngraph.backends.kernels.windows import col2im, pad2d, windows


def conv2d_forward(xp, x, weight, bias, stride, padding, dilation, groups):
    """NCHW cross-correlation with torch's (O, C/g, kh, kw) weights."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    pt, pl, pb, pr = padding
    (sh, sw), (dh, dw) = stride, dilation
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if kh == kw == 1 and sh == sw == 1 and not any(padding):
        cols = x.reshape(n, groups, cg, h * w)  # a 1x1 conv is a plain GEMM: no copy
    else:
        view = windows(xp, pad2d(xp, x, padding), (kh, kw), (sh, sw), (dh, dw), (oh, ow))
        cols = view.reshape(n, groups, cg * kh * kw, oh * ow)
    wmat = weight.reshape(groups, o // groups, cg * kh * kw)
    out = xp.matmul(wmat, cols).reshape(n, o, oh, ow)
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


@kernel("Conv2d")
def conv2d(xp, inputs, params, attrs, ctx):
    return conv2d_forward(
        xp, inputs[0], params["weight"], params.get("bias"),
        attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"],
    )


@kernel("ConvTranspose2d")
def conv_transpose2d(xp, inputs, params, attrs, ctx):
    x, weight, bias = inputs[0], params["weight"], params.get("bias")
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    g = attrs["groups"]
    o = og * g
    pt, pl, pb, pr = attrs["padding"]
    (sh, sw), (dh, dw), (oph, opw) = attrs["stride"], attrs["dilation"], attrs["output_padding"]
    out_h = (h - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1
    out_w = (w - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1
    wmat = weight.reshape(g, c // g, og * kh * kw).transpose(0, 2, 1)  # (g, og*kh*kw, c/g)
    cols = xp.matmul(wmat, x.reshape(n, g, c // g, h * w))  # (n, g, og*kh*kw, h*w)
    cols = cols.reshape(n, o, kh, kw, h, w)
    full = col2im(xp, cols, (n, o, out_h + pt + pb, out_w + pl + pr), (kh, kw), (sh, sw), (dh, dw))
    out = full[:, :, pt : pt + out_h, pl : pl + out_w]
    if bias is not None:
        out = out + bias.reshape(1, o, 1, 1)
    return xp.ascontiguousarray(out)
