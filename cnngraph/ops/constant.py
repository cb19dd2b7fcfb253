"""Constant: a fixed tensor as a value, e.g. the mean and scale an imported model normalises with.

Its data is the parameter ``value`` (so passes can fold it and files store it with the other
weights); ``shape`` is the whole shape, without a batch dimension: a (1, 3, 1, 1) constant broadcasts
against (N, 3, H, W). It is a buffer unless ``trainable``: an imported file's initializers that are not
the weights of a conv, linear or norm (ConvNeXt's layer scale, a bias added after a MatMul) are
parameters of the model that made the file, so they train and count as parameters; the constants a file
states or computes (Constant nodes, folded shape arithmetic) do not.
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
    defaults = {"trainable": False}

    def check(self, node, attrs, inputs):
        shape = attrs["shape"]
        n = len(shape) if isinstance(shape, (list, tuple)) else 1
        return {"shape": self.ints(node, "shape", shape, n, 1), "trainable": bool(attrs["trainable"])}

    def infer(self, node, attrs, inputs):
        return TensorType(attrs["shape"])

    def param_specs(self, attrs, inputs):
        return [ParamSpec("value", attrs["shape"], "zeros", trainable=attrs["trainable"])]

    def describe(self, attrs):
        """Every dim, like Reshape: (1, 1, 1) is not "shape=1"."""
        return "shape=" + ",".join(map(str, attrs["shape"])) + (", trainable" if attrs["trainable"] else "")


def _export(ex, node, spec):
    """A buffer is an ONNX Constant node; a trainable constant is its initializer itself, which the
    consumers read: ONNX's own distinction, so an import brings back which is which."""
    if node.attrs["trainable"] and node.name not in ex.graph.outputs:
        ex.alias(node.name, ex.param(node.params["value"]))
    elif node.attrs["trainable"]:
        ex.add_node("Identity", [ex.param(node.params["value"])], [node.name], node.name)
    else:
        ex.add_node("Constant", [], [node.name], node.name, value=ex.tensor(node.name, ex.graph.params[node.params["value"]]))


ONNX = onnx_table(OnnxOp("Constant", None, export=_export))
