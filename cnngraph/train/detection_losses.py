"""Detection losses: ``loss(outputs, targets) -> (value, gradients by output name)``, as ``train_step``
calls a loss on a model with several outputs.

``targets`` is one ``(boxes (k, 4), labels (k,))`` pair per image, boxes as (x1, y1, x2, y2) pixels of
the model input. Which prediction answers for which box (YOLO's responsible predictor, SSD's matched
default boxes and hard negatives) is decided on the host, where the boxes are; the sums run on the
outputs' array module. The choices are piecewise constant in the outputs, so the gradient is that of
the loss with them fixed, as in the papers' code (and PyTorch's, where the matching runs under no_grad).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnngraph.arrays import namespace, to_numpy
from cnngraph.detection.anchors import SSD_VARIANCES
from cnngraph.detection.boxes import encode, iou_matrix
from cnngraph.detection.losses import smooth_l1
from cnngraph.detection.predict import yolo_boxes
from cnngraph.errors import TrainingError


def _targets(targets, batch: int, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(targets) != batch:
        raise TrainingError(f"{name}: {len(targets)} target lists for a batch of {batch} images")
    out = []
    for i, (boxes, labels) in enumerate(targets):
        boxes, labels = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(labels).reshape(-1)
        if len(boxes) != len(labels):
            raise TrainingError(f"{name}: image {i} has {len(boxes)} boxes but {len(labels)} labels")
        out.append((boxes, labels.astype(np.int64)))
    return out


class YoloLoss:
    """YOLO v1's sum-squared loss (the paper's equation 3), divided by the batch size.

    Per cell holding a box centre (the largest box, when several share a cell), the predictor whose
    decoded box overlaps it most is responsible: lambda_coord (5) times the squared error of its
    (x, y) offsets in the cell and of its (sqrt w, sqrt h) relative to the image, plus the squared
    error of its confidence against the IoU of its box with the truth (``rescore``; 1 without). Every
    other predictor pays lambda_noobj (0.5) times its squared confidence; a cell with an object pays
    the squared error of its C class probabilities against the one-hot class.
    """

    name = "yolo_v1"

    def __init__(self, image_size: tuple[int, int], lambda_coord: float = 5.0, lambda_noobj: float = 0.5,
                 rescore: bool = True):
        self.height, self.width = image_size
        self.lambda_coord, self.lambda_noobj, self.rescore = lambda_coord, lambda_noobj, rescore

    def assign(self, boxes_out: np.ndarray, targets) -> dict[str, np.ndarray]:
        """Host-side targets: per cell the object's mask, offsets, class, and per predictor responsibility."""
        n, s, _, b, _ = boxes_out.shape
        obj = np.zeros((n, s, s), bool)
        coords = np.zeros((n, s, s, 4))
        cls = np.zeros((n, s, s), np.int64)
        truth = np.zeros((n, s, s, 4))
        for i, (boxes, labels) in enumerate(_targets(targets, n, self.name)):
            for k in np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable"):
                x1, y1, x2, y2 = boxes[k]
                gx, gy = (x1 + x2) / 2 / self.width * s, (y1 + y2) / 2 / self.height * s
                col, row = min(int(gx), s - 1), min(int(gy), s - 1)
                obj[i, row, col], cls[i, row, col], truth[i, row, col] = True, labels[k], boxes[k]
                coords[i, row, col] = gx - col, gy - row, np.sqrt((x2 - x1) / self.width), np.sqrt((y2 - y1) / self.height)
        predicted = yolo_boxes(boxes_out, (self.height, self.width))
        iou = np.zeros((n, s, s, b))
        for i, r, c in zip(*np.nonzero(obj)):
            iou[i, r, c] = iou_matrix(predicted[i, r, c], truth[i, r, c][None])[:, 0]
        responsible = np.zeros((n, s, s, b), bool)
        i, r, c = np.nonzero(obj)
        responsible[i, r, c, iou[i, r, c].argmax(axis=-1)] = True
        return {"obj": obj, "coords": coords, "cls": cls, "responsible": responsible,
                "confidence": iou if self.rescore else np.ones_like(iou)}

    def __call__(self, outputs, targets):
        boxes_out, classes_out = outputs["boxes"], outputs["classes"]
        xp = namespace(boxes_out)
        n, s, _, b, _ = boxes_out.shape
        if classes_out.shape[:3] != (n, s, s):
            raise TrainingError(f"{self.name}: outputs 'boxes' {tuple(boxes_out.shape)} and 'classes' "
                                f"{tuple(classes_out.shape)} disagree on the batch or grid")
        t = {k: xp.asarray(v) for k, v in self.assign(to_numpy(boxes_out), targets).items()}
        resp = t["responsible"].astype(boxes_out.dtype)
        coord_diff = (boxes_out[..., :4] - t["coords"][:, :, :, None, :]) * resp[..., None]
        conf = boxes_out[..., 4]
        conf_diff = (conf - t["confidence"]) * resp
        noobj = conf * (1 - resp)
        onehot = xp.eye(classes_out.shape[-1])[t["cls"]]
        class_diff = (classes_out - onehot) * t["obj"][..., None]
        value = (self.lambda_coord * (coord_diff ** 2).sum() + (conf_diff ** 2).sum()
                 + self.lambda_noobj * (noobj ** 2).sum() + (class_diff ** 2).sum()) / n
        grad_boxes = xp.concatenate([2 * self.lambda_coord * coord_diff,
                                     (2 * conf_diff + 2 * self.lambda_noobj * noobj)[..., None]], axis=-1) / n
        return float(value), {"boxes": grad_boxes.astype(boxes_out.dtype),
                              "classes": (2 * class_diff / n).astype(classes_out.dtype)}


class MultiBoxLoss:
    """SSD's MultiBox loss: (cross-entropy + alpha * smooth L1) / matched default boxes.

    Matching (per image): every truth claims the default box that overlaps it most, and every default
    box whose best IoU with a truth reaches ``iou_threshold`` (0.5) is matched to that truth. Matched
    boxes regress the truth's offsets (R-CNN encoding with SSD's variances, smooth L1 with beta 1) and
    classify its class (label + 1: class 0 is the background). Of the rest, only the ``neg_pos_ratio``
    (3) times as many as the image's matches with the highest background loss count (hard negative
    mining). A batch without any match has loss 0.
    """

    name = "multibox"

    def __init__(self, anchors, image_size: tuple[int, int], iou_threshold: float = 0.5, neg_pos_ratio: float = 3.0,
                 alpha: float = 1.0, variances: Sequence[float] = SSD_VARIANCES):
        self.anchors = to_numpy(anchors).astype(np.float64)
        height, width = image_size
        self.scale = np.array([width, height, width, height], np.float64)
        self.iou_threshold, self.neg_pos_ratio, self.alpha = iou_threshold, neg_pos_ratio, alpha
        self.variances = tuple(variances)

    def match(self, targets, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N, A), 0 background; offsets (N, A, 4)) for the default boxes."""
        a = len(self.anchors)
        labels = np.zeros((batch, a), np.int64)
        offsets = np.zeros((batch, a, 4))
        for i, (boxes, classes) in enumerate(_targets(targets, batch, self.name)):
            if len(boxes) == 0:
                continue
            iou = iou_matrix(boxes / self.scale, self.anchors)  # (k, A)
            best_truth, best_iou = iou.argmax(axis=0), iou.max(axis=0)
            forced = iou.argmax(axis=1)
            best_truth[forced] = np.arange(len(boxes))
            best_iou[forced] = 1.0
            matched = best_iou >= self.iou_threshold
            labels[i, matched] = classes[best_truth[matched]] + 1
            offsets[i, matched] = encode(boxes[best_truth[matched]] / self.scale, self.anchors[matched], self.variances)
        return labels, offsets

    def __call__(self, outputs, targets):
        loc, conf = outputs["loc"], outputs["conf"]
        xp = namespace(loc)
        n, a, _ = loc.shape
        if conf.shape[:2] != (n, a) or a != len(self.anchors):
            raise TrainingError(f"{self.name}: outputs 'loc' {tuple(loc.shape)} and 'conf' {tuple(conf.shape)} do "
                                f"not fit the {len(self.anchors)} default boxes")
        labels_host, offsets = self.match(targets, n)
        labels, offsets = xp.asarray(labels_host), xp.asarray(offsets, dtype=loc.dtype)  # float32 math in training
        shifted = conf - conf.max(axis=-1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        ce = -xp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
        positive = labels_host > 0
        selected = xp.asarray(positive | self._hard_negatives(to_numpy(ce), positive))
        matches = int(positive.sum())
        if matches == 0:
            return 0.0, {"loc": xp.zeros_like(loc), "conf": xp.zeros_like(conf)}
        pos = xp.asarray(positive)[..., None]
        diff = (loc - offsets) * pos
        box_loss, slope = smooth_l1(xp, diff, 1.0)
        value = ((ce * selected).sum() + self.alpha * box_loss.sum()) / matches
        grad_loc = self.alpha * slope / matches
        grad_conf = (xp.exp(log_p) - xp.eye(conf.shape[-1], dtype=conf.dtype)[labels]) * selected[..., None] / matches
        return float(value), {"loc": grad_loc.astype(loc.dtype), "conf": grad_conf.astype(conf.dtype)}

    def _hard_negatives(self, ce: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """Per image, the unmatched default boxes of highest background loss, ``neg_pos_ratio`` per match: the
        boxes whose rank in their image's descending loss order is below the image's count."""
        count = np.minimum((self.neg_pos_ratio * positive.sum(axis=1)).astype(np.int64), (~positive).sum(axis=1))
        order = np.argsort(-np.where(positive, -np.inf, ce), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(ce.shape[1])[None].repeat(len(ce), axis=0), axis=1)
        return rank < count[:, None]
