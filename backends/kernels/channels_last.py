"""Channels-last (NHWC) kernels, for nodes a lowering pass marked ``layout="NHWC"``, and the Layout conversion.

Written once over ``xp`` like every generic kernel, so any backend can run a lowered graph. A
channels-last convolution is one GEMM of (N*OH*OW, kh*kw*C) windows by (kh*kw*C, O) weights: the
windows are a strided view over the padded input and the output comes out channels-last with no
transpose. Element-wise kernels (activations, same-shape Add) are layout-agnostic and registered
for both layouts where they are defined.
"""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.fused import epilogue
from cnngraph.ops.base import NHWC

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


@kernel("Layout", layouts=("NCHW", NHWC))
def layout(xp, inputs, params, attrs, ctx):
    return xp.ascontiguousarray(inputs[0].transpose(TO_NHWC if attrs["to"] == NHWC else TO_NCHW))


@backward("Layout")
def layout_backward(xp, grad, saved, params, attrs):
    return [xp.ascontiguousarray(grad.transpose(TO_NCHW if attrs["to"] == NHWC else TO_NHWC))], {}


def ungrouped(node, dtype):
    return None if node.attrs["groups"] == 1 else "grouped convolutions have no channels-last kernel yet"


def conv2d_nhwc(xp, x, weight, bias, attrs):
    """Cross-correlation of an (N, H, W, C) input with torch's (O, C, kh, kw) weights, as (N, OH, OW, O)."""
    n, h, w, c = x.shape
    o, _, kh, kw = weight.shape
    pt, pl, pb, pr = attrs["padding"]
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if kh == kw == sh == sw == 1 and not any(attrs["padding"]):
        cols = x.reshape(n * h * w, c)  # a 1x1 conv is a plain GEMM: no copy
    else:
        padded = xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if any(attrs["padding"]) else x
        s_n, s_h, s_w, s_c = padded.strides
        view = xp.lib.stride_tricks.as_strided(
            padded, shape=(n, oh, ow, kh, kw, c), strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
        cols = view.reshape(n * oh * ow, kh * kw * c)
    out = xp.matmul(cols, weight.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)).reshape(n, oh, ow, o)
    if bias is not None:
        out += bias
    return out


@kernel("Conv2d", layouts=(NHWC,), variant="nhwc", supports=ungrouped)
def conv2d_channels_last(xp, inputs, params, attrs, ctx):
    return conv2d_nhwc(xp, inputs[0], params["weight"], params.get("bias"), attrs)


@kernel("FusedConv2d", layouts=(NHWC,), variant="nhwc", supports=ungrouped)
def fused_conv2d_channels_last(xp, inputs, params, attrs, ctx):
    return epilogue(xp, conv2d_nhwc(xp, inputs[0], params["weight"], params.get("bias"), attrs), inputs, attrs, ctx)


@kernel("GlobalAvgPool", layouts=(NHWC,), variant="nhwc")
def global_avg_pool_channels_last(xp, inputs, params, attrs, ctx):
    return inputs[0].mean(axis=(1, 2), keepdims=True)
