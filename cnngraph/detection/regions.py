"""Regions for training and running the two-stage heads: a fixed proposal set, jittered truths, and sampling.

R-CNN and Fast R-CNN take their regions from outside the network (selective search in the papers). Here
the proposals are sliding windows: square and tall boxes of several sizes on a regular grid, clipped to
the image (``sliding_windows``), the same set for every image at test time. Training adds jittered
copies of each ground-truth box, so every object has foreground regions whatever the grid. Per image a
training step then keeps a fixed number of regions with at most a fraction of foreground (``sample``):
Fast R-CNN's 64 regions with 25% foreground, Faster R-CNN's RPN's 256 anchors with 50%.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnngraph.detection.anchors import rpn_anchors
from cnngraph.detection.predict import clip_to_image
from cnngraph.detection.targets import IGNORE


def sliding_windows(image_size: tuple[int, int], sizes: Sequence[float], stride: int,
                    ratios: Sequence[float] = (1.0,)) -> np.ndarray:
    """(K, 4) boxes: every size and height/width ratio centred on every ``stride``-pixel cell, clipped."""
    height, width = image_size
    grid = rpn_anchors((max(1, height // stride), max(1, width // stride)), stride, sizes, ratios)
    return clip_to_image(grid, image_size)


def jittered(boxes: np.ndarray, copies: int, spread: float, image_size: tuple[int, int],
             rng: np.random.Generator) -> np.ndarray:
    """``copies`` versions of each box, each corner moved by a normal draw of ``spread`` times the box's
    width or height, clipped to the image; degenerate results are dropped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    moved = np.repeat(boxes, copies, axis=0) + rng.normal(0, spread, (len(boxes) * copies, 4)) * \
        np.repeat(size, copies, axis=0)
    moved = clip_to_image(moved, image_size)
    return moved[(moved[:, 2] > moved[:, 0] + 1) & (moved[:, 3] > moved[:, 1] + 1)]


def sample(labels: np.ndarray, count: int, foreground: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``count`` labelled rows: objects (label > 0) up to ``foreground * count``, the rest
    background (label 0), each drawn without replacement; rows labelled IGNORE are never chosen."""
    objects, background = np.nonzero(labels > 0)[0], np.nonzero(labels == 0)[0]
    fg = rng.permutation(objects)[:int(foreground * count)]
    bg = rng.permutation(background)[:count - len(fg)]
    return np.sort(np.concatenate([fg, bg]))


def sampled_labels(labels: np.ndarray, count: int, foreground: float, rng: np.random.Generator) -> np.ndarray:
    """``labels`` with every row ``sample`` does not choose set to IGNORE (for losses over all anchors)."""
    out = np.full_like(labels, IGNORE)
    chosen = sample(labels, count, foreground, rng)
    out[chosen] = labels[chosen]
    return out
