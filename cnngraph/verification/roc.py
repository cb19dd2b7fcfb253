"""ROC analysis of pair distances: a pair is called "same" when its distance is at most a threshold.

Small and exact rather than a dependency: the curve has a point at every distinct distance (sklearn's
``roc_curve(..., drop_intermediate=False)`` on the negated distances, which the tests compare against),
the AUC is its trapezoid area (ties counted as half, like the Mann-Whitney statistic), and the equal
error rate is read where false accepts and false rejects cross, interpolated between the two points
around the crossing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnngraph.errors import CnnGraphError


@dataclass(frozen=True)
class Roc:
    """False and true accept rates at each threshold, thresholds increasing (the first accepts nothing)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    @property
    def auc(self) -> float:
        return float(np.trapezoid(self.tpr, self.fpr))

    @property
    def eer(self) -> float:
        """The rate at which false accepts equal false rejects (1 - tpr)."""
        gap = self.fpr - (1 - self.tpr)  # rises from -1 to +1 along the curve
        k = int(np.argmax(gap >= 0))
        if k == 0 or gap[k] == 0:
            return float(self.fpr[k])
        t = -gap[k - 1] / (gap[k] - gap[k - 1])
        return float(self.fpr[k - 1] + t * (self.fpr[k] - self.fpr[k - 1]))


def _checked(distances, same) -> tuple[np.ndarray, np.ndarray]:
    d, s = np.asarray(distances, np.float64).reshape(-1), np.asarray(same, bool).reshape(-1)
    if d.shape != s.shape:
        raise CnnGraphError(f"{d.size} distances for {s.size} same/different flags")
    if not np.isfinite(d).all():
        raise CnnGraphError("pair distances must be finite (a NaN embedding?)")
    if s.all() or not s.any():
        raise CnnGraphError(f"a ROC needs both same and different pairs; got {int(s.sum())} same of {s.size}")
    return d, s


def roc(distances, same) -> Roc:
    """The ROC of calling a pair "same" when its distance is <= threshold, at every distinct distance."""
    d, s = _checked(distances, same)
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(d)), d.size - 1]  # the last pair at each distinct distance
    tp, fp = np.cumsum(s)[last], np.cumsum(~s)[last]
    return Roc(np.r_[0.0, fp / (~s).sum()], np.r_[0.0, tp / s.sum()], np.r_[-np.inf, d[last]])


def best_threshold(distances, same) -> tuple[float, float]:
    """(threshold, accuracy): the distance threshold that classifies the most pairs right, halfway between
    two neighbouring distances so it does not sit on a training pair."""
    d, s = _checked(distances, same)
    curve = roc(d, s)
    right = curve.tpr * s.sum() + (1 - curve.fpr) * (~s).sum()
    k = int(np.argmax(right))
    nxt = curve.thresholds[k + 1] if k + 1 < curve.thresholds.size else curve.thresholds[k] + 1.0
    threshold = nxt - 1.0 if k == 0 else (curve.thresholds[k] + nxt) / 2
    return float(threshold), float(right[k] / s.size)


def accuracy(distances, same, threshold: float) -> float:
    d, s = _checked(distances, same)
    return float(((d <= threshold) == s).mean())
