"""GatherElements (ONNX's): ``out[i][j][k] = data[i][indices[i][j][k]][k]`` for axis 1, and likewise for any
per-sample axis; the output has the indices' shape. With TopK's indices it picks each image's best-scored
boxes and their scores."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.gather_nd import indices_as_int64
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, onnx_table
from cnngraph.types import TensorType, fmt_shape


@register
class GatherElements(Op):
    """Every axis but ``axis`` has the same size in data and indices (int64, or whole numbers as floats)."""

    name = "GatherElements"
    arity = (2, 2)
    defaults = {"axis": 1}

    def check(self, node, attrs, inputs):
        data, indices = inputs
        axis = self.sample_axis(node, "axis", attrs["axis"], data.rank)
        others = [a for a in range(data.rank) if a != axis]
        if indices.rank != data.rank or any(data.shape[a] != indices.shape[a] for a in others):
            raise self.error(node, f"expects indices of the data's shape except along axis {axis}, got data "
                                   f"{fmt_shape(data.shape)} and indices {fmt_shape(indices.shape)}")
        return {"axis": axis}

    def infer(self, node, attrs, inputs):
        data, indices = inputs
        return TensorType(indices.shape, data.dtype)


def _export(ex, node, spec):
    ex.add_node("GatherElements", [node.inputs[0], indices_as_int64(ex, node)], [node.name], node.name,
                axis=node.attrs["axis"])


ONNX = onnx_table(OnnxOp("GatherElements", "GatherElements", (OnnxAttr("axis", "axis", default=0),), data=2,
                         export=_export))
