"""Fused conv/linear kernels: the GEMM's fresh output is finished in place (bias, residual, activation).

FusedConv2d writes into ``ctx.out`` (a slice of an elided Concat's buffer) when given: the bias add
lands there, and the epilogue finishes it in place, so the slice is the only output buffer.
"""

from __future__ import annotations

from cnngraph.backends.kernels import get_kernel, into, kernel
from cnngraph.backends.kernels.conv import conv2d_forward


# Activations applied in place on the output (no temporary): per band of a tiled convolution too.
IN_PLACE = {
    "ReLU": lambda xp, out, attrs: xp.maximum(out, 0, out=out),
    "Clip": lambda xp, out, attrs: xp.clip(out, attrs["min"], attrs["max"], out=out),
}


def epilogue(xp, out, inputs, attrs, ctx):
    """Add the residual and apply the activation, in place on ``out`` (which nothing else holds)."""
    if attrs["residual"]:
        out += inputs[1]
    return activate(xp, out, attrs, ctx)


def activate(xp, out, attrs, ctx):
    """The fused activation on ``out``: in place where it has an in-place form, else into ``ctx.out``."""
    act = attrs["activation"]
    if act in IN_PLACE:
        return IN_PLACE[act](xp, out, attrs["activation_attrs"])
    if act is not None:
        return into(ctx, get_kernel(act)(xp, [out], {}, attrs["activation_attrs"], ctx))
    return out


@kernel("FusedConv2d", writes_into=True)
def fused_conv2d(xp, inputs, params, attrs, ctx):
    out = conv2d_forward(xp, inputs[0], params["weight"], params.get("bias"), attrs["stride"], attrs["padding"],
                         attrs["dilation"], attrs["groups"], out=ctx.out)
    return epilogue(xp, out, inputs, attrs, ctx)


@kernel("FusedLinear")
def fused_linear(xp, inputs, params, attrs, ctx):
    out = get_kernel("Linear")(xp, inputs[:1], params, attrs, ctx)
    return epilogue(xp, out, inputs, attrs, ctx)
