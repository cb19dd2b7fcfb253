"""GatherND (ONNX's, batch_dims 0): pick rows of a tensor by index tuples, e.g. the boxes and scores that
NonMaxSuppression selected, ``gather_nd(scores, selected)`` with rows (image, class, box)."""

from __future__ import annotations

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType, fmt_shape


@register
class GatherND(Op):
    """data (d0, ..., dr-1) and indices (..., q) with q <= r -> indices.shape[:-1] + data.shape[q:].

    Indices are int64 (NMS's output, an int64 input) or whole numbers in a float value (a Constant, or an
    imported constant); the export casts the latter to int64, as ONNX wants."""

    name = "GatherND"
    arity = (2, 2)

    def check(self, node, attrs, inputs):
        data, indices = inputs
        if indices.rank < 1 or not isinstance(indices.shape[-1], int) or not 1 <= indices.shape[-1] <= data.rank:
            raise self.error(node, f"expects indices (..., q) with 1 <= q <= {data.rank} (data "
                                   f"{fmt_shape(data.shape)}), got {fmt_shape(indices.shape)}")
        return attrs

    def infer(self, node, attrs, inputs):
        data, indices = inputs
        return TensorType((*indices.shape[:-1], *data.shape[indices.shape[-1]:]), data.dtype)


def indices_as_int64(ex, node) -> str:
    """The node's second input, indices, as ONNX wants them: int64, cast from whole numbers in floats."""
    indices = node.inputs[1]
    if ex.type(indices).dtype == "int64":
        return indices
    return ex.add_node("Cast", [indices], [f"{node.name}/indices"], f"{node.name}/cast", to=ex.tensor_type("int64"))


def _export(ex, node, spec):
    ex.add_node("GatherND", [node.inputs[0], indices_as_int64(ex, node)], [node.name], node.name)


def _load(ctx, node, spec):
    """Constant int64 indices become a float Constant of whole numbers (the IR's constants are float)."""
    if node.attrs.get("batch_dims", 0):
        raise ctx.fail(node, f"batch_dims {node.attrs['batch_dims']}; supported: 0")
    indices = ctx.constant_value(node, ctx.constant(node, 1).astype(np.float32), "indices") \
        if ctx.is_constant(node, 1) else ctx.value(node, 1)
    ctx.emit(node, "GatherND", [ctx.value(node, 0), indices])


ONNX = onnx_table(OnnxOp("GatherND", "GatherND", data=2, export=_export, load=_load))
