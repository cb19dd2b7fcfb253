"""From a detector's outputs to detections: ``(boxes (k, 4) pixels, scores (k,), labels (k,))`` per image.

A detector is recognised by its output names: ``boxes`` and ``classes`` are YOLO v1's grid
(``models/yolo.py``), ``loc``, ``conf`` and ``anchors`` SSD's default-box predictions (``models/ssd.py``).
Boxes are decoded, scored per class (YOLO: confidence times class probability; SSD: softmax), kept
above ``score_threshold``, suppressed per class (non-maximum suppression at ``iou_threshold``) and the
``max_detections`` best kept per image (NMS sees each class's ``pre_nms_top_k`` best).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.detection.anchors import SSD_VARIANCES
from cnngraph.detection.boxes import decode, nms
from cnngraph.errors import CnnGraphError

YOLO_OUTPUTS = {"boxes", "classes"}
SSD_OUTPUTS = {"loc", "conf", "anchors"}


@dataclass
class Postprocess:
    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 200  # per class, as SSD's reference code: bounds NMS's work on an untrained model


def is_detector(output_names) -> bool:
    names = set(output_names)
    return YOLO_OUTPUTS <= names or SSD_OUTPUTS <= names


def detector_kind(output_names) -> str:
    """'yolo' or 'ssd' from a graph's output names, or a CnnGraphError saying what a detector has."""
    names = set(output_names)
    if YOLO_OUTPUTS <= names:
        return "yolo"
    if SSD_OUTPUTS <= names:
        return "ssd"
    raise CnnGraphError(f"not a detector: outputs {sorted(names)}; a YOLO model has outputs 'boxes' and 'classes', "
                        f"an SSD model 'loc', 'conf' and 'anchors' (cnngraph models lists yolo_v1 and ssd)")


def class_count(graph) -> int:
    """Object classes a detector graph scores (SSD's background not counted)."""
    if detector_kind(graph.outputs) == "yolo":
        return int(graph.type_of("classes").shape[-1])
    return int(graph.type_of("conf").shape[-1]) - 1


def detect(outputs: dict, image_size: tuple[int, int], post: Postprocess = Postprocess()) -> list[tuple]:
    """Detections per image of a batch, boxes in pixels of the (H, W) ``image_size`` the model saw."""
    outputs = {k: to_numpy(v).astype(np.float64) for k, v in outputs.items()}
    if detector_kind(outputs) == "yolo":
        boxes, scores = _yolo(outputs["boxes"], outputs["classes"], image_size)
    else:
        boxes, scores = _ssd(outputs["loc"], outputs["conf"], outputs["anchors"], image_size)
    return [suppress(b, s, post) for b, s in zip(boxes, scores)]


def yolo_boxes(box_out: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(N, S, S, B, 5) YOLO predictions -> (N, S, S, B, 4) corner boxes in pixels: (x, y) is the centre's
    offset in its cell, (w, h) the square roots of the size relative to the image."""
    height, width = image_size
    p = to_numpy(box_out).astype(np.float64)
    s = p.shape[1]
    rows, cols = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    cx = (cols[None, :, :, None] + p[..., 0]) / s * width
    cy = (rows[None, :, :, None] + p[..., 1]) / s * height
    w, h = p[..., 2] ** 2 * width, p[..., 3] ** 2 * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def _yolo(box_out: np.ndarray, class_out: np.ndarray, image_size: tuple[int, int]):
    """(N, S*S*B, 4) pixel boxes and (N, S*S*B, C) class-specific confidences."""
    n, s, _, b, _ = box_out.shape
    scores = box_out[..., 4:5] * class_out[:, :, :, None, :]
    return clip_to_image(yolo_boxes(box_out, image_size).reshape(n, -1, 4), image_size), scores.reshape(n, s * s * b, -1)


def _ssd(loc: np.ndarray, conf: np.ndarray, anchors: np.ndarray, image_size: tuple[int, int]):
    """(N, A, 4) pixel boxes and (N, A, C) softmax scores of the object classes (background dropped)."""
    height, width = image_size
    boxes = decode(loc, np.broadcast_to(anchors, loc.shape), SSD_VARIANCES) * np.array([width, height, width, height])
    shifted = np.exp(conf - conf.max(axis=-1, keepdims=True))
    return clip_to_image(boxes, image_size), (shifted / shifted.sum(axis=-1, keepdims=True))[..., 1:]


def clip_to_image(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    height, width = image_size
    return np.clip(boxes, 0, np.array([width, height, width, height], np.float64))


def suppress(boxes: np.ndarray, scores: np.ndarray, post: Postprocess) -> tuple:
    """Per-class NMS on one image, then the ``max_detections`` best across classes. ``boxes`` (k, 4) serve
    every class; (k, C, 4) are class-specific (the R-CNN family's regression)."""
    kept_boxes, kept_scores, kept_labels = [], [], []
    for c in range(scores.shape[1]):
        mine = boxes[:, c] if boxes.ndim == 3 else boxes
        top = np.argsort(-scores[:, c], kind="stable")[:post.pre_nms_top_k]
        keep = top[nms(mine[top], scores[top, c], post.iou_threshold, post.score_threshold, post.max_detections)]
        kept_boxes.append(mine[keep])
        kept_scores.append(scores[keep, c])
        kept_labels.append(np.full(len(keep), c, np.int64))
    b, s, y = np.concatenate(kept_boxes), np.concatenate(kept_scores), np.concatenate(kept_labels)
    best = np.argsort(-s, kind="stable")[:post.max_detections]
    return b[best], s[best], y[best]
