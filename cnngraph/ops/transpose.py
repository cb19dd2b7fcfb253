"""Transpose: permute the per-sample axes (NCHW -> NHWC is perm (0, 2, 3, 1)); the batch stays first.
A value without the batch may move its leading axis: a detector's (R, C, 4) class boxes per region become
(C, R, 4), one row of regions per class, as NonMaxSuppression reads them.

Imported ONNX Transposes that only move size-1 axes become Reshapes; the rest (channel shuffles,
layout changes) need this op.
"""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_list, onnx_table
from cnngraph.types import BATCH, TensorType


@register
class Transpose(Op):
    name = "Transpose"
    required = ("perm",)

    def check(self, node, attrs, inputs):
        rank = inputs[0].rank
        perm = self.ints(node, "perm", attrs["perm"], rank)
        if sorted(perm) != list(range(rank)):
            raise self.attr_error(node, f"perm must order the axes 0..{rank - 1} once each, got {attrs['perm']!r}")
        if perm[0] != 0 and BATCH in inputs[0].shape:
            raise self.attr_error(node, f"perm must keep the batch axis first, got {attrs['perm']!r}")
        return {"perm": perm}

    def infer(self, node, attrs, inputs):
        shape = inputs[0].shape
        return TensorType(tuple(shape[a] for a in attrs["perm"]), inputs[0].dtype)


def _load(ctx, node, spec):
    """A permutation that keeps the non-unit axes in order moves no data: it is a Reshape."""
    shape = ctx.type(node, 0).shape
    perm = node.attrs.get("perm", list(range(len(shape)))[::-1])
    if [a for a in perm if shape[a] != 1] == [a for a in range(len(shape)) if shape[a] != 1]:
        ctx.reshape_like(node)
    else:
        ctx.import_table(node, spec, perm=tuple(perm))


ONNX = onnx_table(OnnxOp("Transpose", "Transpose", (OnnxAttr("perm", "perm", as_list),), load=_load))
