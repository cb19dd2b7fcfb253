"""Photos in, class names out: torchvision's ImageNet preprocessing and the 1,000 ILSVRC-2012 labels.

Preprocessing is the evaluation transform every torchvision classifier was trained to expect:
resize the shorter side to 256 (for a 224 input; the ratio is kept for other sizes), centre-crop,
scale to [0, 1] and normalise with the ImageNet channel means and standard deviations.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from cnngraph.errors import CnnGraphError
from cnngraph.images import read_image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE_RATIO = 256 / 224
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def preprocess(path: str, height: int, width: int) -> np.ndarray:
    """A (1, 3, height, width) float32 array from an image file, ready for an ImageNet classifier."""

    def shorter_side_to_crop(w: int, h: int) -> tuple[int, int]:
        scale = round(min(height, width) * RESIZE_RATIO) / min(w, h)
        return max(width, round(w * scale)), max(height, round(h * scale))

    img = read_image(path, "RGB", shorter_side_to_crop, CnnGraphError, f"--input {path}")
    h, w = img.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    rgb = img[top:top + height, left:left + width].astype(np.float32) / 255.0
    return ((rgb - MEAN) / STD).transpose(2, 0, 1)[None]


@functools.cache
def class_names() -> list[str]:
    """ILSVRC-2012 class names in class-index order (line i is class i)."""
    text = resources.files("cnngraph").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()


def top5(logits: np.ndarray) -> list[tuple[str, float]]:
    """The five most probable classes of one sample's logits, with softmax probabilities; class names when
    there are 1,000 classes (ImageNet), indices otherwise."""
    z = logits.astype(np.float64) - logits.max()
    prob = np.exp(z) / np.exp(z).sum()
    names = class_names() if len(logits) == len(class_names()) else None
    return [(names[k] if names else str(k), float(prob[k])) for k in np.argsort(prob)[::-1][:5]]
