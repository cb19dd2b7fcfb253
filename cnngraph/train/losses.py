"""Losses: callables ``loss(outputs, targets) -> (mean loss, gradient w.r.t. outputs)``.

Each matches ``torch.nn.functional``'s loss of the same name with ``reduction="mean"``, in value
and gradient, so a recipe ported from PyTorch sees the same numbers. The gradient comes out of the
same pass as the value (the fused softmax cross-entropy never forms the softmax's Jacobian), and
every exponential is taken of a non-positive number, so large logits cannot overflow.

A loss computes with the outputs' own array module (``xp``: NumPy, CuPy or the strict test
backend), so its gradient is born where the outputs live; targets may be host or device arrays and
are brought over. Labels are checked where they are: free on the host, one wait on a device. The
value comes back as a Python float, the one wait for the device a training step cannot avoid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.arrays import namespace
from cnngraph.errors import TrainingError


class Loss:
    """Base: shape checks shared by the losses; subclasses implement ``__call__``."""

    name = ""

    def __call__(self, outputs, targets) -> tuple[float, Any]:
        raise NotImplementedError

    def _same_shape(self, outputs, targets) -> tuple[Any, Any, Any]:
        """(xp, outputs, targets) for regression-style targets: a float array shaped like the outputs."""
        xp = namespace(outputs)
        outputs = xp.asarray(outputs)
        targets = xp.asarray(targets, dtype=outputs.dtype)
        if targets.shape != outputs.shape:
            raise TrainingError(f"{self.name}: targets have shape {targets.shape}, the outputs {outputs.shape}")
        return xp, outputs, targets

    def _labels(self, logits, labels, ignore_index: int | None = None) -> tuple[Any, Any, Any]:
        """(xp, logits, labels) for class labels: integers shaped like the logits without their class axis (axis 1)."""
        xp = namespace(logits)
        logits, labels = xp.asarray(logits), namespace(labels).asarray(labels)
        if logits.ndim < 2:
            raise TrainingError(f"{self.name}: logits need a class axis, got shape {logits.shape}")
        want = logits.shape[:1] + logits.shape[2:]
        if labels.shape != want:
            raise TrainingError(f"{self.name}: labels have shape {labels.shape}, expected {want} for logits {logits.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise TrainingError(f"{self.name}: labels must be integers (class indices), got dtype {labels.dtype}")
        classes = logits.shape[1]
        bad = (labels < 0) | (labels >= classes)
        if ignore_index is not None:
            bad &= labels != ignore_index
        if bad.any():  # on a device, the one wait of the check
            raise TrainingError(f"{self.name}: label {int(labels[bad][0])} is outside the {classes} classes 0..{classes - 1}")
        return xp, logits, xp.asarray(labels)


class CrossEntropy(Loss):
    """Softmax cross-entropy over axis 1, like ``F.cross_entropy``.

    Logits are (N, C) or (N, C, H, W) (pixel-wise, for segmentation); labels are (N,) or (N, H, W)
    class indices. ``label_smoothing`` mixes the one-hot target with the uniform distribution,
    ``weight`` (C values) weighs each class, and labels equal to ``ignore_index`` contribute nothing.
    The mean divides by the summed weight of the counted labels, as torch does.
    """

    name = "cross_entropy"

    def __init__(self, label_smoothing: float = 0.0, weight=None, ignore_index: int | None = None):
        if not 0.0 <= label_smoothing <= 1.0:
            raise TrainingError(f"{self.name}: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        self.ignore_index = ignore_index

    def __call__(self, logits, labels):
        xp, logits, labels = self._labels(logits, labels, self.ignore_index)
        classes = logits.shape[1]
        if self.weight is not None and self.weight.size != classes:
            raise TrainingError(f"{self.name}: weight has {self.weight.size} entries, the logits have {classes} classes")
        weight = xp.ones(classes) if self.weight is None else xp.asarray(self.weight)
        z = xp.moveaxis(logits, 1, -1).reshape(-1, classes)
        y = labels.reshape(-1)
        counted = xp.ones(y.shape, bool) if self.ignore_index is None else y != self.ignore_index
        y = xp.where(counted, y, 0)

        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        # The target distribution q: (1 - eps) w[y] on the label plus eps/C w[c] on every class.
        eps = self.label_smoothing
        q = (eps / classes) * weight[None, :] * counted[:, None]
        rows = xp.arange(y.size)
        q[rows, y] += (1.0 - eps) * weight[y] * counted
        total = (weight[y] * counted).sum()
        # Every label ignored: q is all zeros, and so are the loss and its gradient (no wait to find out).
        total = xp.where(total == 0, 1.0, total)
        value = float((q * -log_p).sum() / total)
        grad = (q.sum(axis=1, keepdims=True) * xp.exp(log_p) - q) / total
        grad = xp.moveaxis(grad.reshape(labels.shape + (classes,)), -1, 1)
        return value, grad.astype(logits.dtype)


class PixelCrossEntropy(CrossEntropy):
    """Pixel-wise cross-entropy for segmentation; label 255 (Pascal VOC's "void") is ignored by default."""

    name = "pixel_cross_entropy"

    def __init__(self, label_smoothing: float = 0.0, weight=None, ignore_index: int | None = 255):
        super().__init__(label_smoothing, weight, ignore_index)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits (``F.binary_cross_entropy_with_logits``), targets in [0, 1].

    Written with softplus(-z) = log(1 + exp(-|z|)) + max(-z, 0), so no exponential overflows;
    ``pos_weight`` (broadcast over the last axis) weighs the positive term, for rare positives.
    """

    name = "binary_cross_entropy"

    def __init__(self, pos_weight=None):
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)

    def __call__(self, logits, targets):
        xp, z, y = self._same_shape(logits, targets)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(z))) + xp.maximum(-z, 0)
        positive = 1.0 if self.pos_weight is None else 1.0 + (xp.asarray(self.pos_weight) - 1.0) * y
        value = float(((1 - y) * z + positive * softplus_neg).mean())
        sigmoid_neg = xp.exp(-xp.logaddexp(0, z))  # sigmoid(-z), stable both ways
        grad = ((1 - y) - positive * sigmoid_neg) / z.size
        return value, grad.astype(z.dtype)


class MeanSquaredError(Loss):
    """L2: mean of squared differences (``F.mse_loss``)."""

    name = "mse"

    def __call__(self, outputs, targets):
        _, x, y = self._same_shape(outputs, targets)
        diff = x - y
        return float((diff * diff).mean()), (2.0 / x.size) * diff


class L1(Loss):
    """Mean absolute difference (``F.l1_loss``); the subgradient at 0 is 0, as in torch."""

    name = "l1"

    def __call__(self, outputs, targets):
        xp, x, y = self._same_shape(outputs, targets)
        diff = x - y
        return float(xp.abs(diff).mean()), (xp.sign(diff) / x.size).astype(x.dtype)


class MultiMargin(Loss):
    """Multi-class hinge (Weston-Watkins SVM), like ``F.multi_margin_loss``.

    Per sample: sum over wrong classes j of max(0, margin - x[y] + x[j]) ** p, divided by C.
    """

    name = "hinge"

    def __init__(self, margin: float = 1.0, p: int = 1):
        if p not in (1, 2):
            raise TrainingError(f"{self.name}: p must be 1 or 2, got {p}")
        self.margin, self.p = float(margin), p

    def __call__(self, logits, labels):
        xp, x, y = self._labels(logits, labels)
        if x.ndim != 2:
            raise TrainingError(f"{self.name}: logits must be (N, C), got shape {x.shape}")
        n, classes = x.shape
        rows = xp.arange(n)
        slack = self.margin - x[rows, y][:, None] + x
        slack[rows, y] = 0.0
        active = xp.maximum(slack, 0.0)
        value = float((active ** self.p).sum() / (classes * n))
        dslack = (active > 0) * (self.p * active ** (self.p - 1)) / (classes * n)
        grad = dslack.copy()
        grad[rows, y] = -dslack.sum(axis=1)
        return value, grad.astype(x.dtype)


LOSSES = {cls.name: cls for cls in (CrossEntropy, PixelCrossEntropy, BinaryCrossEntropy, MeanSquaredError, L1,
                                    MultiMargin)}
