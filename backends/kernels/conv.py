"""Conv2d as im2col + one batched GEMM per conv; ConvTranspose2d as GEMM + col2im.

The two are each other's adjoint, so each backward reuses the other's forward for the input
gradient; the weight gradient of both is one GEMM per group with the batch folded into the sum.
"""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.windows import pad2d, unwindows, windows


def conv2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, out=None):
    """NCHW cross-correlation with torch's (O, C/g, kh, kw) weights, into ``out`` when given.

    Into ``out`` the bias add (or a copy) moves the GEMM's result: matmul straight into a strided
    slice measured no faster, and a reshape of a slice could silently copy.
    """
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
    result = xp.matmul(wmat, cols).reshape(n, o, oh, ow)
    if out is None:
        out = result
    elif bias is None:
        out[...] = result
    if bias is not None:
        xp.add(result, bias.reshape(1, o, 1, 1), out=out)
    return out


def conv_transpose2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, out_hw):
    """Transposed convolution with torch's (C, O/g, kh, kw) weights onto an output of size ``out_hw``."""
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    o = og * groups
    wmat = weight.reshape(groups, c // groups, og * kh * kw).transpose(0, 2, 1)  # (g, og*kh*kw, c/g)
    cols = xp.matmul(wmat, x.reshape(n, groups, c // groups, h * w))  # (n, g, og*kh*kw, h*w)
    cols = cols.reshape(n, o, kh, kw, h, w)
    out = unwindows(xp, cols, (n, o, *out_hw), padding, (kh, kw), stride, dilation)
    if bias is not None:
        out = out + bias.reshape(1, o, 1, 1)
    return xp.ascontiguousarray(out)


def _weight_grad(xp, small, big, attrs):
    """Sum over the batch of ``small`` (N, S, OH, OW) against the windows of ``big`` (N, B, H, W): (S, B/g, kh, kw).

    For Conv2d ``small`` is the output gradient and ``big`` the input; for ConvTranspose2d the roles
    swap (its input against the windows of its output gradient), which gives its (C, O/g) layout.
    """
    n, s, oh, ow = small.shape
    b, g, (kh, kw) = big.shape[1], attrs["groups"], attrs["kernel_size"]
    view = windows(xp, pad2d(xp, big, attrs["padding"]), (kh, kw), attrs["stride"], attrs["dilation"], (oh, ow))
    cols = view.transpose(1, 2, 3, 0, 4, 5).reshape(g, b // g * kh * kw, n * oh * ow)
    rows = small.transpose(1, 0, 2, 3).reshape(g, s // g, n * oh * ow)
    return xp.matmul(rows, cols.transpose(0, 2, 1)).reshape(s, b // g, kh, kw)


def param_grads(xp, saved, grad, small, big, attrs):
    """The bias and weight gradients that are wanted (``small`` and ``big`` as for ``_weight_grad``)."""
    grads = {}
    if "bias" in saved.need_params:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    if "weight" in saved.need_params:
        grads["weight"] = _weight_grad(xp, small, big, attrs)
    return grads


def _geometry(attrs):
    return attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"]


@kernel("Conv2d", writes_into=True)
def conv2d(xp, inputs, params, attrs, ctx):
    return conv2d_forward(xp, inputs[0], params["weight"], params.get("bias"), *_geometry(attrs), out=ctx.out)


def input_grad_as_conv(weight, attrs):
    """For stride 1, the input gradient is a plain convolution of ``grad`` with the flipped, transposed
    kernel and the complementary padding d(k-1) - p: the im2col GEMM path, 2-3x faster than GEMM +
    col2im's scattered adds. Returns that kernel (a view) and padding, or None where the padding would
    be negative (p > d(k-1)) or stride > 1."""
    (kh, kw), (dh, dw), g = attrs["kernel_size"], attrs["dilation"], attrs["groups"]
    pt, pl, pb, pr = attrs["padding"]
    full = (dh * (kh - 1), dw * (kw - 1))
    pads = (full[0] - pt, full[1] - pl, full[0] - pb, full[1] - pr)
    if attrs["stride"] != (1, 1) or min(pads) < 0:
        return None
    o, cg = weight.shape[:2]
    flipped = weight.reshape(g, o // g, cg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(g * cg, o // g, kh, kw)
    return flipped[:, :, ::-1, ::-1], pads


def _input_grad_as_conv(xp, grad, weight, attrs):
    found = input_grad_as_conv(weight, attrs)
    if found is None:
        return None
    flipped, pads = found
    return conv2d_forward(xp, grad, xp.ascontiguousarray(flipped), None, (1, 1), pads, attrs["dilation"],
                          attrs["groups"])


@backward("Conv2d", keeps=("inputs",))
def conv2d_backward(xp, grad, saved, params, attrs):
    x = saved.inputs[0]
    dx = None
    if saved.need_inputs[0]:
        dx = _input_grad_as_conv(xp, grad, params["weight"], attrs)
        if dx is None:
            dx = conv_transpose2d_forward(xp, grad, params["weight"], None, *_geometry(attrs), x.shape[2:])
    return [dx], param_grads(xp, saved, grad, grad, x, attrs)


@kernel("ConvTranspose2d")
def conv_transpose2d(xp, inputs, params, attrs, ctx):
    x, weight = inputs[0], params["weight"]
    kh, kw = weight.shape[2:]
    pt, pl, pb, pr = attrs["padding"]
    (sh, sw), (dh, dw), (oph, opw) = attrs["stride"], attrs["dilation"], attrs["output_padding"]
    out_h = (x.shape[2] - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1
    out_w = (x.shape[3] - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1
    return conv_transpose2d_forward(xp, x, weight, params.get("bias"), *_geometry(attrs), (out_h, out_w))


@backward("ConvTranspose2d", keeps=("inputs",))
def conv_transpose2d_backward(xp, grad, saved, params, attrs):
    """The input gradient is a convolution of ``grad``; with output_padding >= stride (possible when
    dilation > stride) it yields extra trailing positions that belong to no input, dropped here."""
    x = saved.inputs[0]
    h, w = x.shape[2:]
    dx = None
    if saved.need_inputs[0]:
        dx = conv2d_forward(xp, grad, params["weight"], None, *_geometry(attrs))[:, :, :h, :w]
    return [dx], param_grads(xp, saved, grad, x, grad, attrs)
