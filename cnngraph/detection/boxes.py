"""Box math: IoU, the R-CNN (dx, dy, dw, dh) encoding with variances, and per-class NMS.

Written over the array module of the boxes handed in (``xp`` in, ``xp`` out) where that costs nothing;
NMS is sequential by nature and runs in NumPy on the host. Boxes are ``(x1, y1, x2, y2)`` corners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnngraph.arrays import namespace, to_numpy

# The largest log-scale a decoded box may take (torchvision's log(1000 / 16)): keeps exp() finite
# while a detector is untrained, and no real box grows 62x past its anchor.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def _check_boxes(boxes, name: str):
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected boxes with 4 coordinates in the last axis, found shape {tuple(boxes.shape)}")


def area(boxes):
    """Area of each box; a box with x2 < x1 or y2 < y1 has area 0."""
    _check_boxes(boxes, "area")
    xp = namespace(boxes)
    w = xp.clip(boxes[..., 2] - boxes[..., 0], 0, None)
    h = xp.clip(boxes[..., 3] - boxes[..., 1], 0, None)
    return w * h


def iou_matrix(a, b):
    """(len(a), len(b)) intersection over union; 0 where the union is empty."""
    _check_boxes(a, "iou_matrix a")
    _check_boxes(b, "iou_matrix b")
    xp = namespace(a)
    top_left = xp.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = xp.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = xp.clip(bottom_right - top_left, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(a)[:, None] + area(b)[None, :] - inter
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0)


def corners_to_centres(boxes):
    """(x1, y1, x2, y2) -> (cx, cy, w, h)."""
    _check_boxes(boxes, "corners_to_centres")
    xp = namespace(boxes)
    wh = boxes[..., 2:] - boxes[..., :2]
    return xp.concatenate([boxes[..., :2] + 0.5 * wh, wh], axis=-1)


def centres_to_corners(boxes):
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    _check_boxes(boxes, "centres_to_corners")
    xp = namespace(boxes)
    half = 0.5 * boxes[..., 2:]
    return xp.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1)


def _variances(variances: Sequence[float], xp, dtype):
    if len(variances) != 4 or any(v <= 0 for v in variances):
        raise ValueError(f"variances: expected 4 positive numbers (vx, vy, vw, vh), found {tuple(variances)}")
    return xp.asarray(variances, dtype=dtype)


def encode(boxes, anchors, variances: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
    """Regression targets taking ``anchors`` to ``boxes`` (same shape, corners): R-CNN's
    ``dx = (cx - cxa) / wa / vx``, ``dy`` likewise, ``dw = log(w / wa) / vw``, ``dh`` likewise.

    SSD's variances (0.1, 0.1, 0.2, 0.2) scale the targets to about unit variance; torchvision's
    box-coder weights (10, 10, 5, 5) are their reciprocals.
    """
    xp = namespace(boxes)
    if tuple(boxes.shape) != tuple(anchors.shape):
        raise ValueError(f"encode: boxes {tuple(boxes.shape)} and anchors {tuple(anchors.shape)} differ in shape")
    var = _variances(variances, xp, boxes.dtype)
    b, a = corners_to_centres(boxes), corners_to_centres(anchors)
    centre = (b[..., :2] - a[..., :2]) / a[..., 2:]
    scale = xp.log(b[..., 2:] / a[..., 2:])
    return xp.concatenate([centre, scale], axis=-1) / var


def decode(deltas, anchors, variances: Sequence[float] = (1.0, 1.0, 1.0, 1.0), max_log_scale: float = MAX_LOG_SCALE):
    """Boxes (corners) that ``deltas`` encode against ``anchors``: the inverse of :func:`encode`.

    ``dw``, ``dh`` are clipped at ``max_log_scale`` before ``exp`` so an untrained head cannot overflow.
    """
    xp = namespace(deltas)
    if tuple(deltas.shape[-1:]) != (4,) or tuple(anchors.shape[-1:]) != (4,):
        raise ValueError(f"decode: expected (..., 4) deltas and anchors, found {tuple(deltas.shape)} and "
                         f"{tuple(anchors.shape)}")
    d = deltas * _variances(variances, xp, deltas.dtype)
    a = corners_to_centres(anchors)
    centre = a[..., :2] + d[..., :2] * a[..., 2:]
    size = a[..., 2:] * xp.exp(xp.minimum(d[..., 2:], max_log_scale))
    return centres_to_corners(xp.concatenate([centre, size], axis=-1))


def nms(boxes, scores, iou_threshold: float, score_threshold: float | None = None,
        max_output: int | None = None) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, by descending score.

    A box is dropped when its IoU with a kept, higher-scoring box is greater than ``iou_threshold``;
    boxes scoring ``<= score_threshold`` are never kept (ONNX NonMaxSuppression's rules); at most
    ``max_output`` are returned. Ties in score keep the lower index first.
    """
    boxes, scores = to_numpy(boxes), to_numpy(scores)
    _check_boxes(boxes, "nms")
    if boxes.ndim != 2 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: expected boxes (K, 4) and scores (K,), found {boxes.shape} and {scores.shape}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"nms: iou_threshold must lie in [0, 1], found {iou_threshold}")
    order = np.argsort(-scores, kind="stable")
    if score_threshold is not None:
        order = order[scores[order] > score_threshold]
    limit = len(order) if max_output is None else max(0, int(max_output))
    ious = iou_matrix(boxes[order], boxes[order])
    keep: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    for i in range(len(order)):
        if len(keep) >= limit:
            break
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= ious[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def batched_nms(boxes, scores, iou_threshold: float, score_threshold: float | None = None,
                max_output_per_class: int | None = None) -> np.ndarray:
    """ONNX NonMaxSuppression on a batch: boxes (B, K, 4), scores (B, C, K) -> (M, 3) int64 rows
    ``(batch, class, box)``, by batch, then class, then descending score; classes never suppress each other.
    """
    boxes, scores = to_numpy(boxes), to_numpy(scores)
    if boxes.ndim != 3 or scores.ndim != 3 or boxes.shape[-1] != 4 or scores.shape[0] != boxes.shape[0] \
            or scores.shape[2] != boxes.shape[1]:
        raise ValueError(f"batched_nms: expected boxes (B, K, 4) and scores (B, C, K), found {boxes.shape} "
                         f"and {scores.shape}")
    rows = [np.stack([np.full(len(kept), b), np.full(len(kept), c), kept], axis=1)
            for b in range(scores.shape[0]) for c in range(scores.shape[1])
            for kept in [nms(boxes[b], scores[b, c], iou_threshold, score_threshold, max_output_per_class)]]
    return np.concatenate(rows, axis=0).astype(np.int64) if rows else np.zeros((0, 3), np.int64)
