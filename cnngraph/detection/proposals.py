"""Region proposals from an RPN's outputs (Ren et al., 2015), on the host: decode every anchor, clip to the
image, drop tiny boxes, keep the ``pre_nms`` best, suppress at IoU 0.7, keep the ``post_nms`` best.

Approximate joint training treats the proposals as constants: no gradient flows through them, so
computing them outside the graph loses nothing the paper's training uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.detection.boxes import decode, nms
from cnngraph.detection.predict import clip_to_image


def propose(logits, deltas, anchors: np.ndarray, image_size: tuple[int, int], pre_nms: int = 6000,
            post_nms: int = 300, iou_threshold: float = 0.7, min_size: float = 1.0,
            variances: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    """(R, 5) rows ``(image, x1, y1, x2, y2)`` for a batch: ``logits`` (N, 2, K) background/object per
    anchor, ``deltas`` (N, K, 4), ``anchors`` (K, 4) in the same order."""
    logits, deltas = to_numpy(logits).astype(np.float64), to_numpy(deltas).astype(np.float64)
    objectness = 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))  # the two-class softmax's object column
    rows = []
    for b in range(logits.shape[0]):
        boxes = decode(deltas[b], anchors, variances)
        boxes = clip_to_image(boxes, image_size)
        sizes = boxes[:, 2:] - boxes[:, :2]
        keep = np.nonzero((sizes >= min_size).all(axis=1))[0]
        keep = keep[np.argsort(-objectness[b, keep], kind="stable")[:pre_nms]]
        kept = keep[nms(boxes[keep], objectness[b, keep], iou_threshold, max_output=post_nms)]
        rows.append(np.concatenate([np.full((len(kept), 1), b), boxes[kept]], axis=1))
    return np.concatenate(rows, axis=0)
