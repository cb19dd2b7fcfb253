"""GatherND (ONNX's, batch_dims 0): pick rows of a tensor by index tuples, e.g. the boxes and scores that
NonMaxSuppression selected, ``gather_nd(scores, selected)`` with rows (image, class, box)."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType, fmt_shape


@register
class GatherND(Op):
    """data (d0, ..., dr-1) and int64 indices (..., q) with q <= r -> indices.shape[:-1] + data.shape[q:]."""

    name = "GatherND"
    arity = (2, 2)

    def check(self, node, attrs, inputs):
        data, indices = inputs
        if indices.dtype != "int64" or indices.rank < 1 or not isinstance(indices.shape[-1], int) \
                or not 1 <= indices.shape[-1] <= data.rank:
            raise self.error(node, f"expects int64 indices (..., q) with 1 <= q <= {data.rank} (data "
                                   f"{fmt_shape(data.shape)}), got {indices.dtype} {fmt_shape(indices.shape)}")
        return attrs

    def infer(self, node, attrs, inputs):
        data, indices = inputs
        return TensorType((*indices.shape[:-1], *data.shape[indices.shape[-1]:]), data.dtype)


ONNX = onnx_table(OnnxOp("GatherND", "GatherND", data=2))
