"""NonMaxSuppression: greedy and sequential, so it runs on the host (``cnngraph.detection.boxes``)."""

from __future__ import annotations

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.backends.kernels import backward, kernel
from cnngraph.detection.boxes import batched_nms, centres_to_corners


@kernel("NonMaxSuppression")
def non_max_suppression(xp, inputs, params, attrs, ctx):
    boxes, scores = (to_numpy(a) for a in inputs)
    if attrs["center_point_box"]:
        boxes = centres_to_corners(boxes)
    else:  # two opposite corners in either order, as ONNX allows
        boxes = np.concatenate([np.minimum(boxes[..., :2], boxes[..., 2:]),
                                np.maximum(boxes[..., :2], boxes[..., 2:])], axis=-1)
    threshold = attrs["score_threshold"]
    kept = batched_nms(boxes, scores, attrs["iou_threshold"], None if threshold == -np.inf else threshold,
                       attrs["max_output_boxes_per_class"])
    return xp.asarray(kept)


@backward("NonMaxSuppression")
def non_max_suppression_backward(xp, grad, saved, params, attrs):
    """Indices: no gradient flows through them."""
    return [None, None], {}
