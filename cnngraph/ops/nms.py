"""NonMaxSuppression with ONNX's semantics: per image and class, the indices of the boxes kept.

boxes (N, K, 4) and scores (N, C, K) in; (M, 3) int64 rows ``(image, class, box)`` out, ordered by image,
class, then descending score. M depends on the data, so it is a dimension name of its own, unique to
the node (``selected_<node>``). Integer output: nothing flows back through it.
"""

from __future__ import annotations

import re

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import MAX_DIM, Op
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, onnx_table
from cnngraph.types import TensorType, fmt_shape

INDEX_DTYPE = "int64"


def selected_dim(node: str) -> str:
    """The name of the number of boxes ``node`` keeps: an identifier, different for every node."""
    return "selected_" + re.sub(r"\W", "_", node)


@register
class NonMaxSuppression(Op):
    """A box is dropped when its IoU with a kept, higher-scoring box of its class is above iou_threshold;
    boxes scoring at most score_threshold are never kept; at most max_output_boxes_per_class per image
    and class (0, ONNX's default, keeps none). ``center_point_box`` 0: rows are two opposite corners
    (ONNX's (y1, x1, y2, x2), or (x1, y1, x2, y2): IoU is the same); 1: (x_centre, y_centre, w, h)."""

    name = "NonMaxSuppression"
    arity = (2, 2)
    defaults = {"max_output_boxes_per_class": 0, "iou_threshold": 0.0, "score_threshold": -float("inf"),
                "center_point_box": 0}
    short = {"max_output_boxes_per_class": "top_k", "iou_threshold": "iou", "score_threshold": "score"}

    def check(self, node, attrs, inputs):
        boxes, scores = inputs
        if boxes.rank != 3 or boxes.shape[2] != 4 or scores.rank != 3 or scores.shape[2] != boxes.shape[1] \
                or scores.shape[0] != boxes.shape[0]:
            raise self.error(node, f"expects boxes (N, K, 4) and scores (N, C, K), got {fmt_shape(boxes.shape)} "
                                   f"and {fmt_shape(scores.shape)}")
        a = dict(attrs)
        a["max_output_boxes_per_class"] = self.ints(node, "max_output_boxes_per_class",
                                                    a["max_output_boxes_per_class"], 1, 0, MAX_DIM)[0]
        a["iou_threshold"] = self.real(node, "iou_threshold", a["iou_threshold"], lambda v: 0 <= v <= 1,
                                       "a number in [0, 1]")
        a["score_threshold"] = self.real(node, "score_threshold", a["score_threshold"], lambda v: v == v,
                                         "a number (-inf: no threshold)")
        if a["center_point_box"] not in (0, 1):
            raise self.attr_error(node, f"center_point_box must be 0 or 1, got {a['center_point_box']!r}")
        return a

    def infer(self, node, attrs, inputs):
        return TensorType((selected_dim(node), 3), INDEX_DTYPE)


def _scalar_int(value) -> int:
    return int(np.asarray(value).reshape(-1)[0])


def _scalar_float(value) -> float:
    return as_float(np.asarray(value).reshape(-1)[0])


ONNX = onnx_table(OnnxOp("NonMaxSuppression", "NonMaxSuppression", (
    OnnxAttr("max_output_boxes_per_class", "max_output_boxes_per_class", load=_scalar_int, default=0, input=2),
    OnnxAttr("iou_threshold", "iou_threshold", as_float, _scalar_float, default=0.0, input=3, dtype="float"),
    OnnxAttr("score_threshold", "score_threshold", as_float, _scalar_float, default=-float("inf"), input=4,
             dtype="float"),
    OnnxAttr("center_point_box", "center_point_box", default=0),
), data=2))
