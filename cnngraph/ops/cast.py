"""Cast between the graph's float type and int64 indices (ONNX Cast), e.g. NonMaxSuppression's image column
turned into the float batch index of a region row ``(image, x1, y1, x2, y2)``, and back.

``to="float32"`` means the graph's float type: an executor running in float64 or float16 casts to that.
Float to int64 truncates toward zero, as ONNX. Nothing flows back through an integer on either side.
"""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType

TARGETS = ("float32", "int64")


@register
class Cast(Op):
    name = "Cast"
    required = ("to",)

    def check(self, node, attrs, inputs):
        if attrs["to"] not in TARGETS:
            raise self.attr_error(node, f"to must be one of {', '.join(TARGETS)}, got {attrs['to']!r}")
        return attrs

    def infer(self, node, attrs, inputs):
        return TensorType(inputs[0].shape, attrs["to"])


def _export(ex, node, spec):
    target = ex.dtype if node.attrs["to"] == "float32" else node.attrs["to"]  # the model's float type
    ex.add_node("Cast", list(node.inputs), [node.name], node.name, to=ex.tensor_type(target))


ONNX = onnx_table(OnnxOp("Cast", None, export=_export))
