"""``digit-detection``: a detection set generated from the shipped UCI digits, deterministic from a seed.

Each canvas holds one to ``max_objects`` digits, each upscaled (bilinear) to its own size between
``scales`` (fractions of the canvas side), pasted over earlier ones (so they overlap and occlude),
on faint noise with clutter: fragments of other digits that carry no box, which a detector must
learn to leave alone. Each digit's instance mask is its ink still visible on the canvas; its box is
that mask's tight box. A placement that would hide more than ``max_hidden`` of any digit's ink is
drawn again, so every labelled digit stays readable.

Training canvases use the digits' training rows and test canvases the held-out rows (the split of
``digits.py``), so the test set holds handwriting the model never saw. Nothing is stored: the set
is rebuilt from the 1,797 shipped digits (1,000 64x64 canvases took 3.4 s on the 2-core machine
at load average 9.7).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnngraph.errors import DataError
from cnngraph.train.data import Dataset, digits
from cnngraph.train.data.detection import DetectionSet, DetectionSplits, checked

INK = 0.25          # a pixel of an upscaled digit at or above this is ink (digits are 0..1)
MAX_HIDDEN = 0.4    # at most this share of a digit's ink may be covered by later digits
ATTEMPTS = 30       # placements tried per digit before the canvas keeps fewer digits


def load(size: tuple[int, int] = (64, 64), seed: int = 0, n_train: int = 2000, n_test: int = 400,
         max_objects: int = 4, scales: tuple[float, float] = (0.2, 0.5)) -> DetectionSplits:
    """Train and test canvases of ``size`` (H, W), from the digits' own train and test rows."""
    if min(size) < 16:
        raise DataError(f"digit-detection: canvases must be at least 16x16 pixels, got {size[0]}x{size[1]}")
    if not 0 < scales[0] <= scales[1] <= 1:
        raise DataError(f"digit-detection: scales must satisfy 0 < low <= high <= 1, got {scales}")
    source = digits.load()
    streams = np.random.SeedSequence(seed).spawn(2)
    train = generate(source.train, n_train, size, np.random.default_rng(streams[0]), max_objects, scales)
    test = generate(source.test, n_test, size, np.random.default_rng(streams[1]), max_objects, scales)
    return DetectionSplits(train, test, f"digit-detection (seed {seed}): {size[0]}x{size[1]} canvases of up to "
                           f"{max_objects} UCI digits at {scales[0]:.0%}-{scales[1]:.0%} of the side")


def generate(source: Dataset, count: int, size: tuple[int, int], rng: np.random.Generator, max_objects: int = 4,
             scales: tuple[float, float] = (0.2, 0.5)) -> DetectionSet:
    """``count`` canvases drawn from ``source`` (8x8 digits in [0, 1]) with ``rng``."""
    height, width = size
    images = np.empty((count, 1, height, width), np.float32)
    boxes, labels, masks = [], [], []
    for i in range(count):
        canvas = rng.uniform(0.0, 0.08, size).astype(np.float32)
        _clutter(canvas, source, rng, scales)
        found = _place_digits(canvas, source, rng, int(rng.integers(1, max_objects + 1)), scales)
        images[i, 0] = canvas
        boxes.append(np.array([_tight_box(m) for m, _ in found], np.float32).reshape(-1, 4))
        labels.append(np.array([label for _, label in found], np.int64))
        masks.append(np.array([m for m, _ in found], bool).reshape(-1, height, width))
    return checked(images, boxes, labels, [str(c) for c in range(10)], "digit-detection", masks=masks)


def _upscaled(digit: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(digit.astype(np.float32)).resize((side, side), Image.BILINEAR))


def _side(rng: np.random.Generator, size: tuple[int, int], scales: tuple[float, float]) -> int:
    return max(6, int(round(min(size) * rng.uniform(*scales))))


def _place_digits(canvas: np.ndarray, source: Dataset, rng: np.random.Generator, wanted: int,
                  scales: tuple[float, float]) -> list[tuple[np.ndarray, int]]:
    """Paste up to ``wanted`` digits; returns (visible mask, label) per digit kept."""
    placed: list[tuple[np.ndarray, int, int]] = []  # (visible mask, label, ink pixel count)
    for _ in range(wanted):
        for _ in range(ATTEMPTS):
            index = int(rng.integers(len(source)))
            side = _side(rng, canvas.shape, scales)
            patch = _upscaled(source.x[index, 0], side)
            top = int(rng.integers(0, canvas.shape[0] - side + 1))
            left = int(rng.integers(0, canvas.shape[1] - side + 1))
            ink = np.zeros(canvas.shape, bool)
            ink[top:top + side, left:left + side] = patch >= INK
            if not ink.any() or any(((m & ~ink).sum() < (1 - MAX_HIDDEN) * n) for m, _, n in placed):
                continue
            region = canvas[top:top + side, left:left + side]
            region[:] = np.where(patch >= INK, patch, np.maximum(region, patch))
            placed = [(m & ~ink, y, n) for m, y, n in placed] + [(ink, int(source.y[index]), int(ink.sum()))]
            break
    return [(m, y) for m, y, _ in placed]


def _clutter(canvas: np.ndarray, source: Dataset, rng: np.random.Generator, scales: tuple[float, float]) -> None:
    """One to three fragments (a corner quarter of some digit, dimmed): strokes with no box."""
    for _ in range(int(rng.integers(1, 4))):
        digit = source.x[int(rng.integers(len(source))), 0]
        r, c = rng.integers(0, 5, size=2)
        side = max(4, _side(rng, canvas.shape, scales) // 2)
        patch = _upscaled(digit[r:r + 4, c:c + 4], side) * np.float32(rng.uniform(0.4, 0.8))
        top = int(rng.integers(0, canvas.shape[0] - side + 1))
        left = int(rng.integers(0, canvas.shape[1] - side + 1))
        region = canvas[top:top + side, left:left + side]
        region[:] = np.maximum(region, patch)


def _tight_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
