"""Losses on embeddings for verification: contrastive (Hadsell, Chopra and LeCun, 2006) on pairs, and
triplet with batch-hard mining (Hermans, Beyer and Leibe, 2017). Both take ``(embeddings, labels)``
like every loss here, so ``train_step`` and the Trainer run them unchanged.

Distances are PyTorch's ``F.pairwise_distance``: ``||a - b + eps||`` with eps = 1e-6, which keeps the
gradient finite when two embeddings coincide, and makes the values equal torch's to rounding.

The siamese setup: a contrastive batch is the same network applied to both halves of one batch,
``x = concat(a, b)``, pair i being rows i and i + B. One compiled model and one parameter set serve
both branches, and the executor's backward sums the two branches' gradients into the shared weights,
which is what a two-input graph with shared parameters computes too, without duplicating a node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.arrays import namespace
from cnngraph.errors import TrainingError
from cnngraph.train.losses import Loss

EPS = 1e-6  # torch's pairwise_distance default


def _checked(name: str, embeddings, labels) -> tuple[Any, Any, Any]:
    """(xp, embeddings (N, D), labels (N,) on the embeddings' device), or a TrainingError."""
    xp = namespace(embeddings)
    x, y = xp.asarray(embeddings), namespace(labels).asarray(labels)
    if x.ndim != 2:
        raise TrainingError(f"{name}: embeddings must be (N, D), got shape {x.shape}")
    if y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
        raise TrainingError(f"{name}: labels must be {x.shape[0]} integers (one identity per embedding), got "
                            f"shape {y.shape} of {y.dtype}")
    return xp, x, xp.asarray(y)


def _norm(xp, v):
    """Euclidean norms over the last axis, and the unit vectors (0 where a norm is 0)."""
    d = xp.sqrt((v * v).sum(axis=-1))
    return d, v / xp.maximum(d, 1e-30)[..., None]


class _MarginLoss(Loss):
    margin_default = 1.0

    def __init__(self, margin: float | None = None):
        margin = self.margin_default if margin is None else margin
        if not margin > 0:
            raise TrainingError(f"{self.name}: margin must be > 0, got {margin}")
        self.margin = float(margin)


class ContrastiveLoss(_MarginLoss):
    """Mean over pairs of ``same * d^2 + (1 - same) * max(0, margin - d)^2``, d the pair's distance
    (margin 1 by default).

    The embeddings are (2B, D): pair i is rows i and i + B (the two halves of a siamese batch), and it
    is a "same" pair when their labels agree.
    """

    name = "contrastive"

    def __call__(self, embeddings, labels):
        xp, x, y = _checked(self.name, embeddings, labels)
        if len(x) % 2:
            raise TrainingError(f"{self.name}: a siamese batch holds pairs as its two halves, so an even number "
                                f"of embeddings; got {len(x)}")
        half = len(x) // 2
        same = (y[:half] == y[half:]).astype(x.dtype)
        d, unit = _norm(xp, x[:half] - x[half:] + EPS)
        slack = xp.maximum(self.margin - d, 0.0)
        value = float((same * d * d + (1 - same) * slack * slack).mean())
        dd = (same * 2 * d - (1 - same) * 2 * slack) / half  # dL/dd per pair
        ga = dd[:, None] * unit
        return value, xp.concatenate([ga, -ga]).astype(x.dtype)


class TripletLoss(_MarginLoss):
    """Batch-hard triplet loss: each anchor with its farthest positive and its nearest negative in the
    batch, ``max(0, d(a, p) - d(a, n) + margin)`` (margin 0.2 by default), averaged over the anchors
    that have both (0 when none has: a batch of one identity teaches nothing)."""

    name = "triplet"
    margin_default = 0.2

    def __call__(self, embeddings, labels):
        xp, x, y = _checked(self.name, embeddings, labels)
        n = len(x)
        dist, unit = _norm(xp, x[:, None, :] - x[None, :, :] + EPS)  # (N, N), (N, N, D): from j towards i
        same = y[:, None] == y[None, :]
        positive = same & ~xp.eye(n, dtype=bool)
        hardest_p = xp.where(positive, dist, -xp.inf).argmax(axis=1)
        hardest_n = xp.where(same, xp.inf, dist).argmin(axis=1)
        rows = xp.arange(n)
        valid = positive.any(axis=1) & (~same).any(axis=1)
        count = max(int(valid.sum()), 1)
        hinge = dist[rows, hardest_p] - dist[rows, hardest_n] + self.margin
        active = (valid & (hinge > 0)).astype(x.dtype) / count
        value = float((xp.maximum(hinge, 0) * valid).sum() / count)
        up, un = unit[rows, hardest_p] * active[:, None], unit[rows, hardest_n] * active[:, None]
        onehot = xp.eye(n, dtype=x.dtype)
        grad = up - un - onehot[hardest_p].T @ up + onehot[hardest_n].T @ un
        return value, grad.astype(x.dtype)
