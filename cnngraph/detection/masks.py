"""Instance masks for Mask R-CNN (He et al., 2017): training targets per region, full-image masks from the mask
head's logits, and the overlap of masks, in NumPy.

- ``mask_targets``: each foreground region's object mask cropped to the region and resampled to M x M, a
  RoIAlign of the binary mask (half-pixel coordinates, adaptive sampling) thresholded at 0.5: the region's
  view of its object, aligned with what the head's RoIAlign saw.
- ``paste_masks``: the inverse at inference: each detection's sigmoid mask of its class, resampled bilinearly
  into its box (pixel centres mapped into the M x M grid, edges clamped, as ``F.interpolate`` with
  ``align_corners=False``), thresholded at 0.5; zero outside the box.
- ``mask_iou``: IoU of binary masks, and against crowd truths the intersection over the detection's area
  (pycocotools' ``maskUtils.iou``).
"""

from __future__ import annotations

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.backends.kernels.roi import roi_align
from cnngraph.detection.targets import match
from cnngraph.errors import CnnGraphError


def mask_targets(proposals: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray, gt_masks: np.ndarray,
                 size: int = 14, fg_iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(masks (R, size, size) of 0/1, classes (R,)) for the proposals (R, 4) of one image: a proposal matched to
    an object at IoU >= ``fg_iou`` (Fast R-CNN's foreground, as ``rcnn_targets``) gets that object's mask
    (``gt_masks`` (G, H, W), nonzero inside) and class (``gt_labels``, 1..K); the others class 0, mask zero."""
    proposals, gt_masks = np.asarray(proposals, np.float64).reshape(-1, 4), np.asarray(gt_masks)
    if gt_masks.ndim != 3 or len(gt_masks) != len(gt_boxes):
        raise CnnGraphError(f"mask_targets: expected one (H, W) mask per ground-truth box ({len(gt_boxes)}), got "
                            f"masks of shape {gt_masks.shape}")
    matched, _, positive, _ = match(proposals, np.asarray(gt_boxes, np.float64).reshape(-1, 4), fg_iou, fg_iou)
    classes = np.zeros(len(proposals), np.int64)
    classes[positive] = np.asarray(gt_labels, np.int64)[matched[positive]]
    masks = np.zeros((len(proposals), size, size))
    if positive.any():
        rows = np.concatenate([matched[positive, None], proposals[positive]], axis=1).astype(np.float64)
        attrs = dict(output_size=(size, size), spatial_scale=1.0, sampling_ratio=0, mode="avg",
                     coordinate_mode="half_pixel")
        crops = roi_align(np, [(gt_masks != 0).astype(np.float64)[:, None], rows], {}, attrs, None)
        masks[positive] = crops[:, 0] >= 0.5
    return masks, classes


def _resample_axis(start: np.ndarray, end: np.ndarray, bins: int, length: int) -> np.ndarray:
    """(k, length, bins) weights taking a box's M bins to the image pixels whose centres it covers."""
    centres = np.arange(length) + 0.5
    extent = np.maximum(end - start, np.finfo(np.float64).tiny)
    u = np.clip((centres[None] - start[:, None]) / extent[:, None] * bins - 0.5, 0, bins - 1)
    low = np.floor(u).astype(np.int64)
    high = np.minimum(low + 1, bins - 1)
    frac = u - low
    inside = (centres[None] >= start[:, None]) & (centres[None] <= end[:, None])
    cells = np.arange(bins)
    weights = (low[..., None] == cells) * (1 - frac)[..., None] + (high[..., None] == cells) * frac[..., None]
    return weights * inside[..., None]


def paste_masks(mask_logits, classes: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int],
                threshold: float = 0.5) -> np.ndarray:
    """(k, H, W) bool masks of k detections: ``mask_logits`` (k, C, M, M) of the detections' boxes (k, 4) in
    pixels, ``classes`` (k,) the channel of each detection's class (its label counting the background as 0)."""
    logits = to_numpy(mask_logits).astype(np.float64)
    boxes, classes = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes, np.int64)
    if logits.ndim != 4 or len(logits) != len(boxes) or len(classes) != len(boxes):
        raise CnnGraphError(f"paste_masks: expected mask logits (k, C, M, M) for k = {len(boxes)} boxes and "
                            f"classes, got logits {logits.shape} and {len(classes)} classes")
    if len(classes) and (classes.min() < 0 or classes.max() >= logits.shape[1]):
        raise CnnGraphError(f"paste_masks: classes must index the {logits.shape[1]} mask channels, got "
                            f"{classes.min()} to {classes.max()}")
    probability = 1.0 / (1.0 + np.exp(-logits[np.arange(len(boxes)), classes]))
    height, width = image_size
    rows = _resample_axis(boxes[:, 1], boxes[:, 3], logits.shape[2], height)
    cols = _resample_axis(boxes[:, 0], boxes[:, 2], logits.shape[3], width)
    return rows @ probability @ cols.transpose(0, 2, 1) >= threshold


def mask_iou(masks: np.ndarray, gt_masks: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """(k, m) IoU of binary masks (k, H, W) and (m, H, W); against a crowd truth, intersection over the
    detection's own area, as pycocotools."""
    masks, gt_masks = np.asarray(masks, bool), np.asarray(gt_masks, bool)
    a = masks.reshape(len(masks), int(np.prod(masks.shape[1:]))).astype(np.float64)  # no -1: k or m may be 0
    b = gt_masks.reshape(len(gt_masks), int(np.prod(gt_masks.shape[1:]))).astype(np.float64)
    inter = a @ b.T
    own, theirs = a.sum(axis=1)[:, None], b.sum(axis=1)[None, :]
    crowd = np.zeros(len(b), bool) if crowd is None else np.asarray(crowd, bool)
    union = np.where(crowd[None, :], own, own + theirs - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
