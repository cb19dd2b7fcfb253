"""TopK (ONNX's, indices only): the positions of the ``k`` largest (or smallest) values along a per-sample
axis, best first, equal values in index order. Faster R-CNN's in-graph proposals keep the best-scored
anchors before NMS with it. ONNX's TopK also outputs the values: import computes them as a GatherElements
of the input by these indices, and export leaves that output unread.
"""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.nms import INDEX_DTYPE
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, onnx_table
from cnngraph.types import TensorType, fmt_shape


@register
class TopK(Op):
    name = "TopK"
    required = ("k",)
    defaults = {"axis": -1, "largest": True}

    def check(self, node, attrs, inputs):
        shape = inputs[0].shape
        axis = self.sample_axis(node, "axis", attrs["axis"], len(shape))
        k = self.ints(node, "k", attrs["k"], 1, 1)[0]
        if not isinstance(shape[axis], int) or k > shape[axis]:
            raise self.error(node, f"cannot take the top {k} along axis {axis} of {fmt_shape(shape)}: the axis "
                                   f"must have a fixed size of at least {k}")
        if not isinstance(attrs["largest"], bool):
            raise self.attr_error(node, f"largest must be True or False, got {attrs['largest']!r}")
        return {"k": k, "axis": axis, "largest": attrs["largest"]}

    def infer(self, node, attrs, inputs):
        shape = list(inputs[0].shape)
        shape[attrs["axis"]] = attrs["k"]
        return TensorType(tuple(shape), INDEX_DTYPE)


def _export(ex, node, spec):
    ex.export_table(node, spec, outputs=[f"{node.name}/values", node.name])


def _load(ctx, node, spec):
    """Indices from the IR's TopK; the values, where read, gathered from the input by them."""
    if not ctx.is_constant(node, 1):
        raise ctx.fail(node, "k is computed at run time; supported: a constant k")
    rank = len(ctx.type(node, 0).shape)
    axis = node.attrs.get("axis", -1) % rank
    x = ctx.value(node, 0)
    indices = ctx.emit(node, "TopK", [x], {"k": int(ctx.constant(node, 1).reshape(-1)[0]), "axis": axis,
                                           "largest": bool(node.attrs.get("largest", 1))},
                       output=1 if len(node.outputs) > 1 and node.outputs[1] else "indices")
    ctx.emit(node, "GatherElements", [x, indices], {"axis": axis}, output=0)


ONNX = onnx_table(OnnxOp("TopK", "TopK", (
    OnnxAttr("k", "K", save=lambda k: [k], input=1, since=10),
    OnnxAttr("axis", "axis", default=-1),
    OnnxAttr("largest", "largest", save=int, default=1),
), export=_export, load=_load))
