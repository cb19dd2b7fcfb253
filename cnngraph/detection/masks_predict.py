"""Mask R-CNN's inference on the host, in the paper's order: the RPN's proposals (``propose``), the box head on
them (class-specific box decoding, softmax scores, per-class NMS), then the mask branch on the kept detections
only, each detection's mask of its class pasted into the image (``masks.paste_masks``).

The graph takes the regions as an input, so this is three runs of a compiled model: the image with one
whole-image region (for the RPN's outputs), the proposals, the detections. Labels are the object classes
counted from 0 (the background dropped), as ``predict.detect`` gives them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.detection.boxes import decode, nms
from cnngraph.detection.masks import paste_masks
from cnngraph.detection.predict import Postprocess
from cnngraph.detection.proposals import propose
from cnngraph.errors import CnnGraphError

RCNN_VARIANCES = (0.1, 0.1, 0.2, 0.2)  # the box targets' (targets.rcnn_targets)
MASK_OUTPUTS = {"rpn_logits", "rpn_deltas", "cls_score", "bbox_pred", "mask_logits"}


def is_mask_rcnn(output_names) -> bool:
    return MASK_OUTPUTS <= set(output_names)


def whole_image_regions(images: np.ndarray) -> np.ndarray:
    """(N, 5) rows, one region covering each whole image: what the RPN's run is fed for the regions input."""
    n, _, height, width = images.shape
    return np.array([[b, 0, 0, width, height] for b in range(n)], images.dtype)


def rcnn_detections(cls_score, bbox_pred, rois: np.ndarray, image_size: tuple[int, int], batch: int,
                    post: Postprocess = Postprocess(), variances: Sequence[float] = RCNN_VARIANCES) -> list[tuple]:
    """Per image, ``(boxes (k, 4), scores (k,), labels (k,))``: each region's box for each object class decoded
    against it and clipped, scored by the class softmax, suppressed per class, the best ``max_detections`` kept."""
    scores, deltas = to_numpy(cls_score).astype(np.float64), to_numpy(bbox_pred).astype(np.float64)
    classes = scores.shape[1]
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    probability = shifted / shifted.sum(axis=1, keepdims=True)
    height, width = image_size
    regions = np.repeat(rois[:, None, 1:], classes, axis=1)
    boxes = decode(deltas.reshape(len(rois), classes, 4), regions, variances)
    boxes = np.clip(boxes, 0, [width, height, width, height])
    found = []
    for b in range(batch):
        mine = rois[:, 0] == b
        kept = []
        for c in range(1, classes):
            keep = nms(boxes[mine, c], probability[mine, c], post.iou_threshold, post.score_threshold,
                       post.max_detections)
            kept.append((boxes[mine, c][keep], probability[mine, c][keep], np.full(len(keep), c - 1, np.int64)))
        b_boxes, b_scores, b_labels = (np.concatenate(part) for part in zip(*kept))
        best = np.argsort(-b_scores, kind="stable")[:post.max_detections]
        found.append((b_boxes[best], b_scores[best], b_labels[best]))
    return found


def detect_masks(model, images: np.ndarray, anchors: np.ndarray, post: Postprocess = Postprocess(),
                 proposals: int = 300) -> list[tuple]:
    """Per image of ``images`` (N, C, H, W), ``(boxes, scores, labels, masks (k, H, W) bool)``; ``model`` is a
    compiled Mask R-CNN, ``anchors`` its RPN's (``models.faster_rcnn.anchors``)."""
    n, _, height, width = images.shape
    first = model.run({"image": images, "rois": whole_image_regions(images)}, to_host=True)
    if first["rpn_logits"].shape[2] != len(anchors):
        raise CnnGraphError(f"detect_masks: the RPN scores {first['rpn_logits'].shape[2]} anchors, {len(anchors)} "
                            f"were given; a model built with other anchor sizes or ratios than the defaults "
                            f"needs its own (models.faster_rcnn.anchors(graph, sizes, ratios))")
    rois = propose(first["rpn_logits"], first["rpn_deltas"], anchors, (height, width), post_nms=proposals)
    heads = model.run({"image": images, "rois": rois.astype(images.dtype)}, to_host=True)
    found = rcnn_detections(heads["cls_score"], heads["bbox_pred"], rois, (height, width), n, post)
    rows = np.concatenate([np.concatenate([np.full((len(d[0]), 1), b), d[0]], axis=1) for b, d in enumerate(found)])
    if not len(rows):
        return [(*d, np.zeros((0, height, width), bool)) for d in found]
    logits = model.run({"image": images, "rois": rows.astype(images.dtype)}, to_host=True)["mask_logits"]
    labels = np.concatenate([d[2] for d in found])
    masks = np.split(paste_masks(logits, labels + 1, rows[:, 1:], (height, width)),
                     np.cumsum([len(d[0]) for d in found])[:-1])
    return [(*d, m) for d, m in zip(found, masks)]
