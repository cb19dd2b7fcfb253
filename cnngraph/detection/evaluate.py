"""Detection metrics: Pascal VOC mAP@0.5 and COCO mAP@[.5:.95], from the same detections and truths.

Inputs, one entry per image: ``detections`` as ``(boxes (k, 4), scores (k,), labels (k,))`` and
``truths`` as ``(boxes (m, 4), labels (m,), ignore (m,) bool)``; boxes are ``(x1, y1, x2, y2)`` in
continuous pixel coordinates (no "+1" pixel, as in COCO; the VOC devkit adds 1 to widths, which
changes IoUs of small boxes slightly).

- **VOC** (``voc_map``): per class, detections by descending score; each takes the truth of highest
  IoU in its image; a hit (IoU > 0.5) on an unclaimed truth is a true positive, on a claimed one a
  false positive, on an ignored ("difficult") one neither. AP is the area under the precision
  envelope at every recall step (VOC2010 onwards), or the 11-point mean (VOC2007, ``eleven_point``).
- **COCO** (``coco_map``): pycocotools' rules for boxes, area "all", 100 detections per image and
  class: at each IoU threshold 0.50, 0.55, ..., 0.95 a detection takes the unclaimed truth of highest
  IoU at or above it, preferring non-ignored ("iscrowd") truths, which any number of detections may
  hit and whose IoU is intersection over the *detection's* area; precision is read at 101 recall
  points. AP is the mean over thresholds, recall points and the classes that have truths.
- **COCO masks** (``coco_mask_map``): the same with instance masks (k, H, W) in place of boxes and mask IoU
  (``masks.mask_iou``), pycocotools' "segm" evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cnngraph.detection.boxes import area, iou_matrix
from cnngraph.detection.masks import mask_iou

COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)
COCO_MAX_DETECTIONS = 100


@dataclass
class MeanAP:
    """Per-class AP (NaN for a class without truths) and their mean over the classes that have truths."""

    per_class: np.ndarray
    mean: float
    name: str

    def table(self, classes: Sequence[str]) -> list[tuple[str, float]]:
        return [(str(c), float(ap)) for c, ap in zip(classes, self.per_class)]


def _by_class(items, label_index: int, cls: int):
    """Per image, the mask of the rows labelled ``cls``."""
    return [np.asarray(item[label_index]) == cls for item in items]


def _checked(detections, truths) -> None:
    if len(detections) != len(truths):
        raise ValueError(f"evaluate: {len(detections)} images of detections for {len(truths)} images of truths")


def _mean(per_class: np.ndarray, name: str) -> MeanAP:
    has = ~np.isnan(per_class)
    return MeanAP(per_class, float(per_class[has].mean()) if has.any() else float("nan"), name)


# -- VOC -------------------------------------------------------------------------------------------------------
def voc_ap(recall: np.ndarray, precision: np.ndarray, eleven_point: bool = False) -> float:
    """Area under the precision envelope (or its 11-point mean) of a ranked list's recall/precision."""
    if eleven_point:
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def voc_map(detections, truths, num_classes: int, iou_threshold: float = 0.5, eleven_point: bool = False) -> MeanAP:
    """Pascal VOC mean AP at ``iou_threshold`` (0.5) over ``num_classes`` classes."""
    _checked(detections, truths)
    per_class = np.full(num_classes, np.nan)
    for cls in range(num_classes):
        scores, hits = [], []  # hits: 1 true positive, 0 false positive, -1 ignored
        positives = 0
        for (d_boxes, d_scores, _), d_mask, (t_boxes, _, t_ignore), t_mask in zip(
                detections, _by_class(detections, 2, cls), truths, _by_class(truths, 1, cls)):
            gt, ignore = np.asarray(t_boxes, np.float64)[t_mask], np.asarray(t_ignore, bool)[t_mask]
            positives += int((~ignore).sum())
            boxes, s = np.asarray(d_boxes, np.float64)[d_mask], np.asarray(d_scores, np.float64)[d_mask]
            order = np.argsort(-s, kind="stable")
            ious = iou_matrix(boxes[order], gt) if len(gt) else np.zeros((len(order), 0))
            claimed = np.zeros(len(gt), bool)
            for row in ious:
                best = int(row.argmax()) if len(gt) else -1
                if best < 0 or row[best] <= iou_threshold:
                    hits.append(0)
                elif ignore[best]:
                    hits.append(-1)
                else:
                    hits.append(0 if claimed[best] else 1)
                    claimed[best] = True
            scores.extend(s[order])
        if positives == 0:
            continue
        order = np.argsort(-np.asarray(scores), kind="stable")
        hits_sorted = np.asarray(hits, np.int64)[order]
        hits_sorted = hits_sorted[hits_sorted >= 0]
        tp, fp = np.cumsum(hits_sorted == 1), np.cumsum(hits_sorted == 0)
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class[cls] = voc_ap(recall, precision, eleven_point)
    return _mean(per_class, f"VOC mAP@{iou_threshold:g}" + (" (11-point)" if eleven_point else ""))


# -- COCO ------------------------------------------------------------------------------------------------------
def _coco_ious(boxes: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU, except against a crowd truth: intersection over the detection's own area."""
    boxes, gt = np.asarray(boxes, np.float64), np.asarray(gt, np.float64)
    ious = iou_matrix(boxes, gt)
    if crowd.any() and len(boxes):
        # iou = inter / (a + b - inter), so inter = iou (a + b) / (1 + iou): the intersection, from the IoU
        inter = ious * (area(boxes)[:, None] + area(gt)[None, :]) / (1.0 + ious)
        own = np.maximum(area(boxes), np.finfo(np.float64).tiny)[:, None]
        ious = np.where(crowd[None, :], inter / own, ious)
    return ious


def _coco_match(ious: np.ndarray, crowd: np.ndarray, threshold: float) -> np.ndarray:
    """Per detection (rows, by descending score; truths non-crowd first): 1 matched, 0 unmatched, -1 ignored."""
    out = np.zeros(len(ious), np.int64)
    claimed = np.zeros(ious.shape[1], bool)
    for i, row in enumerate(ious):
        best, best_iou = -1, min(threshold, 1 - 1e-10)
        for g in range(len(row)):
            if claimed[g] and not crowd[g]:
                continue
            if best > -1 and not crowd[best] and crowd[g]:
                break  # non-crowd truths come first; a crowd one never displaces a real match
            if row[g] < best_iou:
                continue
            best, best_iou = g, row[g]
        if best > -1:
            out[i] = -1 if crowd[best] else 1
            claimed[best] = True
    return out


def coco_map(detections, truths, num_classes: int, thresholds: np.ndarray = COCO_THRESHOLDS,
             max_detections: int = COCO_MAX_DETECTIONS, overlaps: Callable = _coco_ious) -> MeanAP:
    """COCO mean AP averaged over IoU ``thresholds`` (0.50:0.95); a single threshold gives AP@that IoU.
    ``overlaps(detected, truths, crowd)`` is the IoU matrix of one image and class (boxes by default)."""
    _checked(detections, truths)
    thresholds = np.atleast_1d(np.asarray(thresholds, np.float64))
    per_class = np.full(num_classes, np.nan)
    for cls in range(num_classes):
        scores, matches = [], []  # matches: (detections, thresholds)
        positives = 0
        for (d_boxes, d_scores, _), d_mask, (t_boxes, _, t_ignore), t_mask in zip(
                detections, _by_class(detections, 2, cls), truths, _by_class(truths, 1, cls)):
            crowd = np.asarray(t_ignore, bool)[t_mask]
            gt_order = np.argsort(crowd, kind="stable")
            gt, crowd = np.asarray(t_boxes)[t_mask][gt_order], crowd[gt_order]
            positives += int((~crowd).sum())
            s = np.asarray(d_scores, np.float64)[d_mask]
            order = np.argsort(-s, kind="stable")[:max_detections]
            boxes = np.asarray(d_boxes)[d_mask][order]
            ious = overlaps(boxes, gt, crowd) if len(gt) else np.zeros((len(boxes), 0))
            matches.append(np.stack([_coco_match(ious, crowd, t) for t in thresholds], axis=1).reshape(-1, len(thresholds)))
            scores.extend(s[order])
        if positives == 0:
            continue
        order = np.argsort(-np.asarray(scores), kind="mergesort")
        hits = np.concatenate(matches, axis=0)[order]
        per_class[cls] = np.mean([_coco_ap(hits[:, t], positives) for t in range(len(thresholds))])
    name = "COCO mAP@[.5:.95]" if len(thresholds) == 10 else f"COCO mAP@{','.join(f'{t:g}' for t in thresholds)}"
    return _mean(per_class, name)


def coco_mask_map(detections, truths, num_classes: int, thresholds: np.ndarray = COCO_THRESHOLDS,
                  max_detections: int = COCO_MAX_DETECTIONS) -> MeanAP:
    """COCO mask mean AP: detections ``(masks (k, H, W), scores, labels)``, truths ``(masks (m, H, W), labels,
    crowd)``, matched by mask IoU."""
    found = coco_map(detections, truths, num_classes, thresholds, max_detections, mask_iou)
    return MeanAP(found.per_class, found.mean, found.name.replace("COCO", "COCO mask"))


def _coco_ap(hits: np.ndarray, positives: int) -> float:
    """Mean interpolated precision at the 101 recall points, ignored detections left out."""
    hits = hits[hits >= 0]
    if len(hits) == 0:
        return 0.0
    tp, fp = np.cumsum(hits == 1).astype(np.float64), np.cumsum(hits == 0).astype(np.float64)
    recall = tp / positives
    precision = np.maximum.accumulate((tp / np.maximum(tp + fp, np.spacing(1)))[::-1])[::-1]
    at = np.searchsorted(recall, COCO_RECALLS, side="left")
    return float(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean())
