"""Linear: the fully connected layer on (N, features), torch's (out, in) weight layout."""

from __future__ import annotations

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, Window, fmt_shape
from cnngraph.ops.conv import INITS as CONV_INITS
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.ops.pool import adaptive_pool_load
from cnngraph.types import TensorType

INITS = tuple(i for i in CONV_INITS if i != "bilinear")  # bilinear kernels are 4-D only


@register
class Linear(Op):
    """y = x W^T + b. Images must be flattened first, so a forgotten flatten fails here, loudly."""

    name = "Linear"
    required = ("out_features",)
    defaults = {"bias": True, "weight_init": "torch"}
    short = {"out_features": "out"}

    def check(self, node, attrs, inputs):
        t = inputs[0]
        if t.rank != 2:
            raise self.error(
                node, f"expects a 2-D (N, features) input, got shape {fmt_shape(t.shape)}; flatten it first"
            )
        a = dict(attrs)
        a["out_features"] = self.ints(node, "out_features", a["out_features"], 1, 1)[0]
        a["bias"] = bool(a["bias"])
        if a["weight_init"] not in INITS:
            raise self.attr_error(node, f"weight_init must be one of {INITS}, got {a['weight_init']!r}")
        return a

    def infer(self, node, attrs, inputs):
        return TensorType((inputs[0].shape[0], attrs["out_features"]), inputs[0].dtype)

    def param_specs(self, attrs, inputs):
        fan_in, fan_out = inputs[0].shape[1], attrs["out_features"]
        specs = [ParamSpec("weight", (fan_out, fan_in), attrs["weight_init"], fan_in, fan_out)]
        if attrs["bias"]:
            specs.append(ParamSpec("bias", (fan_out,), "torch_bias", fan_in, fan_out))
        return specs

    def macs(self, attrs, inputs, output):
        return inputs[0].shape[1] * attrs["out_features"]

    def window(self, attrs, inputs):
        return Window(global_=True)


# -- ONNX --------------------------------------------------------------------------------

def _gemm_load(ctx, node, spec):
    """alpha * A @ op(B) + beta * C: transB=0 transposes the weight, alpha and beta fold into weight and bias.

    A weight or bias used as stored keeps its initializer's name.
    """
    a = node.attrs
    if a.get("transA", 0):
        raise ctx.fail(node, "transA=1 would put the batch on the second axis; supported: transA=0")
    alpha, beta, trans_b = a.get("alpha", 1.0), a.get("beta", 1.0), a.get("transB", 0)
    weight = ctx.initializer(node, 1)
    if not trans_b or alpha != 1:
        weight = (weight.value if trans_b else weight.value.T) * np.float32(alpha)
    out = ctx.array(weight).shape[0]
    x = ctx.value(node, 0)
    params = {"weight": weight}
    if ctx.has_input(node, 2) and not ctx.is_constant(node, 2):
        if beta != 1:
            raise ctx.fail(node, f"beta={beta} with a runtime C; supported: beta=1, or a constant C")
        y = ctx.emit(node, "Linear", [x], {"out_features": out, "bias": False}, params, output="gemm")
        return ctx.emit(node, "Add", [y, ctx.value(node, 2)])
    if ctx.has_input(node, 2):
        bias = ctx.initializer(node, 2)
        c = bias.value
        if c.shape not in ((), (1,), (out,), (1, 1), (1, out)):
            raise ctx.fail(node, f"C of shape {c.shape} is not one bias per output; supported: (), (1,), ({out},), "
                                 f"(1, {out})")
        params["bias"] = bias if beta == 1 and c.shape == (out,) else np.broadcast_to(c * np.float32(beta), (1, out))[0]
    ctx.emit(node, "Linear", [x], {"out_features": out, "bias": "bias" in params}, params)


def _matmul_load(ctx, node):
    """x @ W with a constant W is a Linear layer; averaging matrices on H or W are adaptive average pools."""
    runtime_x = ctx.is_constant(node, 1) and not ctx.is_constant(node, 0)
    if runtime_x and ctx.type(node, 0).rank == 2 and ctx.constant(node, 1).ndim == 2:
        weight = ctx.constant(node, 1).T
        return ctx.emit(node, "Linear", [ctx.value(node, 0)], {"out_features": weight.shape[0], "bias": False},
                        {"weight": weight})
    if adaptive_pool_load(ctx, node):
        return None
    if runtime_x and ctx.type(node, 0).rank == 4 and ctx.constant(node, 1).ndim == 2:
        return _channels_last_load(ctx, node, ctx.constant(node, 1))
    raise ctx.fail(node, "supported: x @ W with a runtime 2-D x and a constant 2-D W (a Linear layer), a "
                         "runtime (N, H, W, K) x and a constant (K, M) W (a Linear over channels-last pixels), or "
                         "adaptive average pooling written as constant averaging matrices on H or W")


def _channels_last_load(ctx, node, weight):
    """(N, H, W, K) @ (K, M), torch's nn.Linear on channels-last pixels (ConvNeXt's MLP), is the same
    map at every pixel: a 1x1 convolution between transposes to and from (N, K, H, W)."""
    nchw = ctx.emit(node, "Transpose", [ctx.value(node, 0)], {"perm": (0, 3, 1, 2)}, output="nchw")
    conv = ctx.emit(node, "Conv2d", [nchw], {"out_channels": weight.shape[1], "kernel_size": 1, "bias": False},
                    {"weight": weight.T[:, :, None, None]}, output="pointwise")
    return ctx.emit(node, "Transpose", [conv], {"perm": (0, 2, 3, 1)})


ONNX = onnx_table(
    OnnxOp("Linear", "Gemm", params=("weight", "bias"), fixed={"transB": 1}, load=_gemm_load),
    imports={"MatMul": _matmul_load},
)
