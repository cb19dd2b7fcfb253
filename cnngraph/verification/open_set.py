"""Open-set verification: train on some identities, verify pairs of identities never seen in training.

The identities not trained on are split in two halves by image (per identity, seeded): the threshold
is chosen on the pairs of one half and the accuracy is measured at it on the other, where the ROC, its
AUC and the equal error rate are measured too. Pairs are balanced: as many "different" pairs as "same"
ones (up to ``max_pairs`` of each, drawn with the seed), as in LFW's protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnngraph.errors import DataError
from cnngraph.train.data import Dataset, Splits
from cnngraph.verification.roc import Roc, accuracy, best_threshold, roc

MAX_IMAGES = 4000  # per half: all pairs of 4,000 images are 8 million index pairs
MAX_PAIRS = 20000  # of each kind


def parse_classes(text: str) -> list[int]:
    """'0-6' or '0,2,5-7' -> sorted class indices."""
    found: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise DataError(f"--train-classes {text!r}: expected class indices and ranges such as 0-6 or 0,2,5-7")
        found.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return sorted(found)


def split_identities(splits: Splits, known: list[int]) -> tuple[Splits, Dataset]:
    """(the splits restricted to the ``known`` classes, relabelled 0..k-1 in their order; every image of the
    other classes, from both splits, with its original label)."""
    classes = max(int(splits.train.y.max()), int(splits.test.y.max())) + 1
    outside = [c for c in known if c >= classes]
    if outside:
        raise DataError(f"--train-classes: {splits.source} has classes 0..{classes - 1}, not {outside}")
    unseen = [c for c in range(classes) if c not in known]
    if len(unseen) < 2:
        raise DataError(f"--train-classes leaves {len(unseen)} of {splits.source}'s {classes} classes for "
                        f"verification; open-set pairs need at least 2 unseen identities")
    relabel = np.full(classes, -1, np.int64)
    relabel[known] = np.arange(len(known))
    names = [splits.train.classes[c] if c < len(splits.train.classes) else str(c) for c in known]

    def known_part(d: Dataset) -> Dataset:
        keep = np.isin(d.y, known)
        return Dataset(d.x[keep], relabel[d.y[keep]], names)

    rest = [d.take(np.isin(d.y, unseen)) for d in (splits.train, splits.test)]
    unseen_data = Dataset(np.concatenate([d.x for d in rest]), np.concatenate([d.y for d in rest]), splits.train.classes)
    return Splits(known_part(splits.train), known_part(splits.test), f"{splits.source}, classes {known}"), unseen_data


def halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets, each holding half of every identity's images (at most MAX_IMAGES each)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == c))
        first.append(index[: len(index) // 2])
        second.append(index[len(index) // 2:])
    return tuple(np.sort(rng.permutation(np.concatenate(h))[:MAX_IMAGES]) for h in (first, second))


def balanced_pairs(labels: np.ndarray, seed: int, max_pairs: int = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index pairs: every same-identity pair or ``max_pairs`` of them, and as many different ones."""
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), 1)
    same = labels[i] == labels[j]
    count = min(int(same.sum()), int((~same).sum()), max_pairs)
    pick = np.concatenate([rng.choice(np.flatnonzero(same), count, replace=False),
                           rng.choice(np.flatnonzero(~same), count, replace=False)])
    return i[pick], j[pick]


@dataclass
class Report:
    """Open-set figures: the ROC on the test pairs, and the threshold chosen on the other half."""

    curve: Roc
    threshold: float
    threshold_accuracy: float  # on the pairs it was chosen on
    accuracy: float  # on the test pairs, at that threshold
    test_pairs: int
    threshold_pairs: int

    @property
    def auc(self) -> float:
        return self.curve.auc

    @property
    def eer(self) -> float:
        return self.curve.eer

    def summary(self) -> str:
        return (f"open-set verification: ROC AUC {self.auc:.4f}, EER {self.eer:.2%}, accuracy {self.accuracy:.2%} "
                f"at threshold {self.threshold:.4f} (chosen on {self.threshold_pairs:,} other pairs, where it "
                f"scores {self.threshold_accuracy:.2%}); {self.test_pairs:,} test pairs, half of them same")


def distances(embeddings: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings[i] - embeddings[j], axis=1)


def evaluate(embed: Callable[[np.ndarray], np.ndarray], unseen: Dataset, seed: int = 0) -> Report:
    """Embed every unseen image once (``embed``: images -> (N, D) embeddings), then measure the pairs."""
    embeddings = embed(unseen.x)
    found = []
    for k, half in enumerate(halves(unseen.y, seed)):
        i, j = balanced_pairs(unseen.y[half], seed + 1 + k)
        found.append((distances(embeddings[half], i, j), unseen.y[half][i] == unseen.y[half][j]))
    (d_fit, same_fit), (d_test, same_test) = found
    threshold, fit_accuracy = best_threshold(d_fit, same_fit)
    return Report(roc(d_test, same_test), threshold, fit_accuracy, accuracy(d_test, same_test, threshold),
                  d_test.size, d_fit.size)
