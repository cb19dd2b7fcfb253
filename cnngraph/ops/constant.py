"""Constant: a fixed tensor as a value, e.g. the mean and scale an imported model normalises with.

Its data is the non-trainable parameter ``value`` (so passes can fold it and files store it with
the other weights); ``shape`` is the whole shape, without a batch dimension: a (1, 3, 1, 1)
constant broadcasts against (N, 3, H, W).
"""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType


@register
class Constant(Op):
    name = "Constant"
    arity = (0, 0)
    required = ("shape",)

    def check(self, node, attrs, inputs):
        shape = attrs["shape"]
        n = len(shape) if isinstance(shape, (list, tuple)) else 1
        return {"shape": self.ints(node, "shape", shape, n, 1)}

    def infer(self, node, attrs, inputs):
        return TensorType(attrs["shape"])

    def param_specs(self, attrs, inputs):
        return [ParamSpec("value", attrs["shape"], "zeros", trainable=False)]

    def describe(self, attrs):
        """Every dim, like Reshape: (1, 1, 1) is not "shape=1"."""
        return "shape=" + ",".join(map(str, attrs["shape"]))


def _export(ex, node, spec):
    """An Identity of the initializer, so the value keeps its parameter name."""
    ex.add_node("Identity", [ex.param(node.params["value"])], [node.name], node.name)


ONNX = onnx_table(OnnxOp("Constant", None, export=_export))
