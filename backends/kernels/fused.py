"""Fused conv/linear kernels: the GEMM's fresh output is finished in place (bias, residual, activation).

FusedConv2d writes into ``ctx.out`` (a slice of an elided Concat's buffer) when given: the bias add
lands there, and the epilogue finishes it in place, so the slice is the only output buffer. The
convolution kernels finish each chunk of the output (images, bands of rows, shares of the channels) while
it is in cache and on the core that computed it (``per_chunk``); an activation without an in-place form
runs once over the whole output afterwards.
"""

from __future__ import annotations

from cnngraph.backends.kernels import get_kernel, into, kernel
from cnngraph.backends.kernels.activation import rectified
from cnngraph.backends.kernels.conv import conv2d_forward


# Activations applied in place on the output (no temporary): per chunk of a convolution too.
IN_PLACE = {
    "ReLU": lambda xp, out, attrs: rectified(xp, out, out=out),
    "Clip": lambda xp, out, attrs: xp.clip(out, attrs["min"], attrs["max"], out=out),
}


def per_chunk(xp, inputs, attrs):
    """``finish(dest, index)``: the residual add and an in-place activation on ``dest``, the part ``index`` (a
    tuple of slices) of the output; None where the node has neither."""
    residual = inputs[1] if attrs["residual"] else None
    in_place = IN_PLACE.get(attrs["activation"])
    if residual is None and in_place is None:
        return None

    def finish(dest, index):
        if residual is not None:
            dest += residual[index]
        if in_place is not None:
            in_place(xp, dest, attrs["activation_attrs"])

    return finish


def after_chunks(xp, out, attrs, ctx):
    """What ``per_chunk`` left: an activation without an in-place form, once over the whole output."""
    return out if attrs["activation"] in IN_PLACE else activate(xp, out, attrs, ctx)


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
                         attrs["dilation"], attrs["groups"], out=ctx.out, finish=per_chunk(xp, inputs, attrs))
    return into(ctx, after_chunks(xp, out, attrs, ctx))


@kernel("FusedLinear")
def fused_linear(xp, inputs, params, attrs, ctx):
    out = get_kernel("Linear")(xp, inputs[:1], params, attrs, ctx)
    return epilogue(xp, out, inputs, attrs, ctx)
