"""The two-stage detectors' losses: a classification term and a smooth-L1 box term, as
``loss(outputs, targets) -> (value, gradients by output)`` for ``TrainingExecutor.train_step``.

Fast R-CNN's multi-task loss (Girshick, 2015) is ``L = CE(p, u) + lambda [u >= 1] smoothL1(t^u - v)``,
averaged over the regions; the RPN's (Ren et al., 2015) is the same form over anchors, objectness
as a two-class softmax. The box term is divided by every counted region, as torchvision divides it
by the sampled ones. Each call leaves its terms in ``last`` so a training run can log all four (five
with Mask R-CNN's mask term, the mean binary cross-entropy of each foreground region's class mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.arrays import namespace
from cnngraph.detection.targets import IGNORE
from cnngraph.errors import TrainingError
from cnngraph.train.losses import BinaryCrossEntropy, CrossEntropy


def smooth_l1(xp, diff, beta: float):
    """Per-element smooth L1 (Huber with transition ``beta``) of ``diff`` and its derivative."""
    small = xp.abs(diff) < beta
    value = xp.where(small, 0.5 * diff * diff / beta, xp.abs(diff) - 0.5 * beta)
    return value, xp.where(small, diff / beta, xp.sign(diff))


class ClassBoxLoss:
    """``CE(scores, labels) + box_weight * sum over object rows of smoothL1(deltas[label] - targets) / counted``.

    ``scores`` (R, C) and ``deltas`` (R, 4 C) (one box per class, Fast R-CNN) or (R, 4) (one box, the RPN);
    targets ``{"labels": (R,) ints, IGNORE (-1) left out, "deltas": (R, 4)}``; rows with label > 0 are objects.
    """

    name = "class_box"

    def __init__(self, scores: str = "cls_score", deltas: str = "bbox_pred", box_weight: float = 1.0,
                 beta: float = 1.0, prefix: str = ""):
        self.scores, self.deltas, self.box_weight, self.beta, self.prefix = scores, deltas, box_weight, beta, prefix
        self.cross_entropy = CrossEntropy(ignore_index=IGNORE)
        self.last: dict[str, float] = {}

    def __call__(self, outputs: dict[str, Any], targets: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        scores, deltas = outputs[self.scores], outputs[self.deltas]
        xp = namespace(scores)
        labels = xp.asarray(targets["labels"])
        goal = xp.asarray(targets["deltas"], dtype=deltas.dtype)
        rows, classes = scores.shape
        per_row = deltas.shape[1] // 4
        if deltas.shape != (rows, 4 * per_row) or per_row not in (1, classes) or goal.shape != (rows, 4):
            raise TrainingError(f"{self.name}: expected deltas ({rows}, 4) or ({rows}, {4 * classes}) and targets "
                                f"({rows}, 4), got {deltas.shape} and {goal.shape}")
        cls_value, cls_grad = self.cross_entropy(scores, labels)
        objects = (labels > 0).astype(deltas.dtype)[:, None]
        counted = max(int((labels != IGNORE).sum()), 1)
        which = xp.arange(rows), (xp.maximum(labels, 0) if per_row > 1 else xp.zeros(rows, dtype=labels.dtype))
        boxes = deltas.reshape(rows, per_row, 4)
        value, slope = smooth_l1(xp, boxes[which] - goal, self.beta)
        box_value = float((value * objects).sum()) / counted
        grad = xp.zeros_like(boxes)
        grad[which] = slope * objects * (self.box_weight / counted)
        self.last = {f"{self.prefix}classification": cls_value, f"{self.prefix}box": box_value}
        return cls_value + self.box_weight * box_value, {self.scores: cls_grad, self.deltas: grad.reshape(deltas.shape)}


class RpnLoss(ClassBoxLoss):
    """The RPN's terms over every image's anchors: ``rpn_logits`` (N, 2, K) and ``rpn_deltas`` (N, K, 4) against
    targets (N, K) labels (1 object, 0 background, -1 left out) and (N, K, 4) deltas."""

    name = "rpn"

    def __init__(self, box_weight: float = 1.0, beta: float = 1.0):
        super().__init__("rpn_logits", "rpn_deltas", box_weight, beta, prefix="rpn_")

    def __call__(self, outputs, targets):
        logits, deltas = outputs[self.scores], outputs[self.deltas]
        xp = namespace(logits)
        n, _, k = logits.shape
        flat = {self.scores: xp.moveaxis(logits, 1, 2).reshape(n * k, 2), self.deltas: deltas.reshape(n * k, 4)}
        value, grads = super().__call__(flat, {"labels": xp.asarray(targets["labels"]).reshape(-1),
                                               "deltas": xp.asarray(targets["deltas"]).reshape(-1, 4)})
        return value, {self.scores: xp.moveaxis(grads[self.scores].reshape(n, k, 2), 2, 1),
                       self.deltas: grads[self.deltas].reshape(deltas.shape)}


class FasterRcnnLoss:
    """The four losses of Faster R-CNN summed: RPN objectness and box, Fast R-CNN classification and box.
    Targets: ``{"rpn": {labels, deltas}, "rcnn": {labels, deltas}}``; ``last`` holds all four terms."""

    name = "faster_rcnn"

    def __init__(self, rpn: RpnLoss | None = None, rcnn: ClassBoxLoss | None = None):
        self.rpn, self.rcnn = rpn or RpnLoss(), rcnn or ClassBoxLoss()
        self.last: dict[str, float] = {}

    def __call__(self, outputs, targets):
        rpn_value, rpn_grads = self.rpn(outputs, targets["rpn"])
        rcnn_value, rcnn_grads = self.rcnn(outputs, targets["rcnn"])
        self.last = {**self.rpn.last, **self.rcnn.last}
        return rpn_value + rcnn_value, {**rpn_grads, **rcnn_grads}


class MaskLoss:
    """Mask R-CNN's L_mask: the mean per-pixel binary cross-entropy with logits of each foreground region's mask
    on its ground-truth class's channel only (no competition between classes), over those regions' M x M pixels.

    ``mask_logits`` (R, C, M, M); targets ``{"classes": (R,) ints, 0 for regions without an object,
    "masks": (R, M, M) in [0, 1]}`` (``cnngraph.detection.masks.mask_targets``). No foreground: 0.
    """

    name = "mask"

    def __init__(self, logits: str = "mask_logits"):
        self.logits, self.cross_entropy = logits, BinaryCrossEntropy()
        self.last: dict[str, float] = {}

    def __call__(self, outputs: dict[str, Any], targets: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        logits = outputs[self.logits]
        xp = namespace(logits)
        classes, masks = xp.asarray(targets["classes"]), xp.asarray(targets["masks"], dtype=logits.dtype)
        rows, channels = logits.shape[:2]
        if classes.shape != (rows,) or masks.shape != (rows, *logits.shape[2:]):
            raise TrainingError(f"{self.name}: expected classes ({rows},) and masks {(rows, *logits.shape[2:])} for "
                                f"mask logits {logits.shape}, got {classes.shape} and {masks.shape}")
        if not np.issubdtype(classes.dtype, np.integer) or bool(((classes < 0) | (classes >= channels)).any()):
            raise TrainingError(f"{self.name}: classes must be integers 0 to {channels - 1} (0: no object), found "
                                f"{classes.dtype} from {classes.min()} to {classes.max()}")
        grad = xp.zeros_like(logits)
        which = xp.nonzero(classes > 0)[0], classes[classes > 0]
        value = 0.0
        if len(which[0]):
            value, grad[which] = self.cross_entropy(logits[which], masks[which[0]])
        self.last = {self.name: value}
        return value, {self.logits: grad}


class MaskRcnnLoss(FasterRcnnLoss):
    """Faster R-CNN's four losses plus the mask term: targets ``{"rpn", "rcnn", "mask": {classes, masks}}``;
    ``last`` holds all five."""

    name = "mask_rcnn"

    def __init__(self, rpn: RpnLoss | None = None, rcnn: ClassBoxLoss | None = None, mask: MaskLoss | None = None):
        super().__init__(rpn, rcnn)
        self.mask = mask or MaskLoss()

    def __call__(self, outputs, targets):
        value, grads = super().__call__(outputs, targets)
        mask_value, mask_grads = self.mask(outputs, targets["mask"])
        self.last = {**self.last, **self.mask.last}
        return value + mask_value, {**grads, **mask_grads}
