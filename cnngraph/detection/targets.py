"""Training targets of the two-stage detectors: which ground-truth box each anchor or proposal stands for.

Fast R-CNN labels a proposal with its best-overlapping object's class when their IoU is at least 0.5,
background (0) when it lies in [0.1, 0.5), and leaves the rest out (-1). Faster R-CNN's RPN labels an
anchor object (1) past IoU 0.7 or when it is some object's best anchor, background (0) below 0.3, the
rest out (-1). Box targets encode the matched object against the anchor or proposal
(``boxes.encode``); they matter only where the label is an object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnngraph.detection.boxes import encode, iou_matrix

IGNORE = -1  # a label the classification loss leaves out (CrossEntropy's ignore_index)


def match(boxes: np.ndarray, gt_boxes: np.ndarray, high: float, low: float, best_is_positive: bool = False):
    """(index of the matched object or -1, its IoU) for each of ``boxes``: matched at IoU >= high; -1 below;
    with ``best_is_positive`` each object also claims the box(es) overlapping it most (RPN's rule, so
    every object has an anchor). Returns (matched, iou, positive, negative) masks for ``low``."""
    if len(gt_boxes) == 0:
        none = np.full(len(boxes), -1)
        return none, np.zeros(len(boxes)), np.zeros(len(boxes), bool), np.ones(len(boxes), bool)
    ious = iou_matrix(boxes, gt_boxes)
    matched, best = ious.argmax(axis=1), ious.max(axis=1)
    positive = best >= high
    if best_is_positive:
        top = ious.max(axis=0)
        claims = (ious == top[None, :]) & (top[None, :] > 0)
        rows, cols = np.nonzero(claims)
        positive[rows] = True
        matched[rows] = cols
    negative = ~positive & (best < low)
    return np.where(positive, matched, -1), best, positive, negative


RCNN_VARIANCES = (0.1, 0.1, 0.2, 0.2)  # torchvision's box-coder weights (10, 10, 5, 5): deltas near unit scale


def rcnn_targets(proposals: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray, fg_iou: float = 0.5,
                 bg_iou: tuple[float, float] = (0.1, 0.5),
                 variances: Sequence[float] = RCNN_VARIANCES) -> tuple[np.ndarray, np.ndarray]:
    """Fast R-CNN's (labels (R,), deltas (R, 4)) for proposals (R, 4) of one image; object labels are
    ``gt_labels`` (1..K: 0 is the background)."""
    matched, best, positive, _ = match(proposals, gt_boxes, fg_iou, bg_iou[1])
    labels = np.full(len(proposals), IGNORE, np.int64)
    labels[(best >= bg_iou[0]) & (best < bg_iou[1])] = 0
    labels[positive] = np.asarray(gt_labels, np.int64)[matched[positive]]
    return labels, _deltas(proposals, gt_boxes, matched, variances)


def rpn_targets(anchors: np.ndarray, gt_boxes: np.ndarray, high: float = 0.7, low: float = 0.3,
                variances: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Faster R-CNN's RPN (labels (A,) of 1 object, 0 background, -1 left out; deltas (A, 4)) for one image."""
    matched, _, positive, negative = match(anchors, gt_boxes, high, low, best_is_positive=True)
    labels = np.full(len(anchors), IGNORE, np.int64)
    labels[negative] = 0
    labels[positive] = 1
    return labels, _deltas(anchors, gt_boxes, matched, variances)


def _deltas(boxes, gt_boxes, matched, variances) -> np.ndarray:
    deltas = np.zeros((len(boxes), 4))
    hit = matched >= 0
    if hit.any():
        deltas[hit] = encode(np.asarray(gt_boxes, float)[matched[hit]], np.asarray(boxes, float)[hit], variances)
    return deltas
