"""Dropout: a training-time regulariser, the identity at inference."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import TRAINING, OnnxAttr, OnnxOp, as_float, onnx_table


@register
class Dropout(Op):
    """Zeroes each element with probability ``p`` in training and scales the rest by 1 / (1 - p)."""

    name = "Dropout"
    defaults = {"p": 0.5}
    random = True

    def check(self, node, attrs, inputs):
        return {**attrs, "p": self.real(node, "p", attrs["p"], lambda p: 0 <= p < 1, "in [0, 1)")}


ONNX = onnx_table(OnnxOp("Dropout", "Dropout", (
    OnnxAttr("p", "ratio", load=as_float, default=0.5, input=1, since=12, dtype="float"),
    OnnxAttr(TRAINING, "training_mode", load=bool, default=False, input=2, since=12, dtype="bool"),
)))
