"""ImageNet's facts: the 1,000 ILSVRC-2012 labels and the preprocessing constants of torchvision's evaluation
transform (resize the shorter side to 256 for a 224 input, the ratio kept for other sizes; centre-crop; scale
to [0, 1]; normalise with the ImageNet channel means and standard deviations), which ``photo.py`` applies.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE_RATIO = 256 / 224
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


@functools.cache
def class_names() -> list[str]:
    """ILSVRC-2012 class names in class-index order (line i is class i)."""
    text = resources.files("cnngraph").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()


def top_classes(logits: np.ndarray, names: list[str] | None = None, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one sample's logits, with softmax probabilities: named by ``names``,
    else by ImageNet's names when there are 1,000 classes, else by their indices."""
    z = logits.astype(np.float64) - logits.max()
    prob = np.exp(z) / np.exp(z).sum()
    if names is None and len(logits) == len(class_names()):
        names = class_names()
    return [(names[c] if names else str(c), float(prob[c])) for c in np.argsort(prob)[::-1][:k]]
