"""Linear: the fully connected layer on (N, features), torch's (out, in) weight layout."""

from __future__ import annotations

from cnngraph.ir import TensorType
from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, Window, fmt_shape
from cnngraph.ops.conv import INITS as CONV_INITS

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
