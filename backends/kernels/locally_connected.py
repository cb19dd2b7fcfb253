"""LocallyConnected2d as one batched GEMM over output positions: the patches of every position
(im2col, as for Conv2d) meet that position's own (O, C*kh*kw) filter. The backward is two more
batched GEMMs, and col2im (``unwindows``) scatters the patch gradients back onto the input."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.windows import pad_spatial, unwindows, windows


def _patches(xp, x, attrs, out_hw):
    """(OH*OW, C*kh*kw, N): each position's patches, one column per sample."""
    n, c = x.shape[:2]
    kh, kw = attrs["kernel_size"]
    view = windows(xp, pad_spatial(xp, x, attrs["padding"]), (kh, kw), attrs["stride"], (1, 1), out_hw)
    return view.reshape(n, c * kh * kw, out_hw[0] * out_hw[1]).transpose(2, 1, 0)


def _filters(weight):
    """(OH*OW, O, C*kh*kw): the weight's per-position filters as GEMM operands (a free reshape)."""
    oh, ow, o = weight.shape[:3]
    return weight.reshape(oh * ow, o, -1)


@kernel("LocallyConnected2d")
def locally_connected2d(xp, inputs, params, attrs, ctx):
    x, weight = inputs[0], params["weight"]
    oh, ow, o = weight.shape[:3]
    out = xp.matmul(_filters(weight), _patches(xp, x, attrs, (oh, ow)))  # (P, O, N)
    out = xp.ascontiguousarray(out.transpose(2, 1, 0)).reshape(x.shape[0], o, oh, ow)
    if "bias" in params:
        out += params["bias"]
    return out


@backward("LocallyConnected2d", keeps=("inputs",))
def locally_connected2d_backward(xp, grad, saved, params, attrs):
    """With g the (P, O, N) output gradient: dW = g @ patches^T and dpatches = W^T @ g, per position."""
    x, weight = saved.inputs[0], params["weight"]
    n, c = x.shape[:2]
    oh, ow, o = weight.shape[:3]
    kh, kw = attrs["kernel_size"]
    g = grad.reshape(n, o, oh * ow).transpose(2, 1, 0)
    grads = {}
    if "bias" in saved.need_params:
        grads["bias"] = grad.sum(axis=0)
    if "weight" in saved.need_params:
        patches = _patches(xp, x, attrs, (oh, ow))
        grads["weight"] = xp.matmul(g, patches.transpose(0, 2, 1)).reshape(weight.shape)
    dx = None
    if saved.need_inputs[0]:
        cols = xp.matmul(_filters(weight).transpose(0, 2, 1), g)  # (P, C*kh*kw, N)
        cols = cols.transpose(2, 1, 0).reshape(n, c, kh, kw, oh, ow)
        dx = xp.ascontiguousarray(unwindows(xp, cols, x.shape, attrs["padding"], (kh, kw), attrs["stride"], (1, 1)))
    return [dx], grads
