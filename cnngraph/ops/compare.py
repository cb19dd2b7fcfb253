"""GreaterOrEqual: a >= b element-wise, broadcast like Add, as 1.0 or 0.0 in the graph's float type (the IR
has no booleans), so it can mask by multiplication: Faster R-CNN's in-graph proposals drop boxes smaller
than the minimum size this way. ONNX's GreaterOrEqual gives booleans: the export casts them to floats.
"""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.elementwise import _Broadcasting
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table


@register
class GreaterOrEqual(_Broadcasting):
    name = "GreaterOrEqual"
    arity = (2, 2)
    verb = "compare"


def _export(ex, node, spec):
    verdict = ex.add_node("GreaterOrEqual", list(node.inputs), [f"{node.name}/bool"], f"{node.name}/compare")
    ex.add_node("Cast", [verdict], [node.name], node.name, to=ex.tensor_type(ex.dtype))


ONNX = onnx_table(OnnxOp("GreaterOrEqual", "GreaterOrEqual", data=None, export=_export))
