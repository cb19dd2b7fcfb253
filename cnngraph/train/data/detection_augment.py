"""Augmentations that move the boxes with the pixels: horizontal flip, zoom (scale) and random crop.

Each works on one image (C, H, W) in [0, 1] with its boxes (k, 4, pixels) and labels, keeps the image
size, and draws from the generator it is given in a fixed order, so a seed replays it. A box is kept
when its centre stays inside the image (SSD's rule), clipped to the image; labels follow their boxes.
Instance masks, where given, move with the pixels: they ride along as extra channels (resampled, then
thresholded at 0.5) and are kept or dropped with their boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnngraph.train.data.transforms import resize


def flip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: x1' = W - x2, x2' = W - x1."""
    width = image.shape[-1]
    return image[..., ::-1].copy(), np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)


def window(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, top: float, left: float, height: float,
           width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The part of the image in the window (top, left, height, width), which may reach past the image
    (zero padding: a zoom out), resized back to the image size; boxes mapped and filtered."""
    _, h, w = image.shape
    y0, x0 = int(round(top)), int(round(left))
    y1, x1 = y0 + max(1, int(round(height))), x0 + max(1, int(round(width)))
    canvas = np.zeros((image.shape[0], y1 - y0, x1 - x0), np.float32)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        canvas[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[:, sy0:sy1, sx0:sx1]
    fx, fy = w / (x1 - x0), h / (y1 - y0)
    moved = (boxes - np.array([x0, y0, x0, y0], np.float32)) * np.array([fx, fy, fx, fy], np.float32)
    centres = (moved[:, :2] + moved[:, 2:]) / 2
    inside = (centres >= 0).all(axis=1) & (centres[:, 0] < w) & (centres[:, 1] < h)
    moved = np.clip(moved[inside], 0, np.array([w, h, w, h], np.float32))
    return resize(canvas[None], (h, w))[0], moved.astype(np.float32), labels[inside]


@dataclass
class BoxAugment:
    """``flip``: mirror half the images. ``scale`` (low, high): zoom by a factor drawn from it (below 1 the
    image shrinks onto a black canvas at a random place, above 1 a random part is enlarged). ``crop``:
    keep a random window of at least this fraction of each side (1: off), resized back."""

    flip: bool = False
    scale: tuple[float, float] = (1.0, 1.0)
    crop: float = 1.0

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                 masks: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(image, boxes, labels), and the instance ``masks`` (k, H, W) moved along when given."""
        channels, h, w = image.shape
        if masks is not None:
            image = np.concatenate([image, masks.astype(np.float32)])
        kept = np.arange(len(labels))
        if self.scale != (1.0, 1.0):
            f = rng.uniform(*self.scale)
            height, width = h / f, w / f  # the window that fills the image after zooming by f
            top, left = rng.uniform(min(0, h - height), max(0, h - height)), rng.uniform(min(0, w - width),
                                                                                         max(0, w - width))
            image, boxes, kept = window(image, boxes, kept, top, left, height, width)
        if self.crop < 1.0:
            fy, fx = rng.uniform(self.crop, 1.0, size=2)
            top, left = rng.uniform(0, h * (1 - fy)), rng.uniform(0, w * (1 - fx))
            image, boxes, kept = window(image, boxes, kept, top, left, h * fy, w * fx)
        if self.flip and rng.random() < 0.5:
            image, boxes = flip(image, boxes)
        if masks is None:
            return image, boxes, labels[kept]
        return image[:channels], boxes, labels[kept], image[channels:][kept] >= 0.5
