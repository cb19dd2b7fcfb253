"""Image transforms: fitting a dataset to the model input, normalisation, augmentation.

Resizing uses Pillow's bilinear filter on each channel in float mode ("F", from float32 arrays), so no precision is
lost to 8-bit rounding: the 8x8 digits become smooth 32x32 images for LeNet-5 (nearest-neighbour
would give blocky 4x4 squares the convolutions would learn as artefacts). It is done once, at load
time. A one-channel dataset feeding a three-channel model has its channel repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnngraph.errors import DataError
from cnngraph.limits import array_bytes, check_bytes
from cnngraph.train.data import Dataset, Splits


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1; float images pass as float32."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    return x.astype(np.float32, copy=False)


def resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, h, w) -> (N, C, H, W) float32, bilinear, channel by channel."""
    h, w = size
    x = to_float(x)
    out = np.empty(x.shape[:2] + (h, w), np.float32)
    for i, image in enumerate(x):
        for c, plane in enumerate(image):
            out[i, c] = np.asarray(Image.fromarray(plane).resize((w, h), Image.BILINEAR))
    return out


def fit(data: Dataset, shape: tuple[int, int, int], where: str) -> Dataset:
    """Match the model input (C, H, W): repeat a single channel, resize what differs."""
    channels, h, w = shape
    x = data.x
    check_bytes(array_bytes((len(x), channels, h, w), 4), f"{where}: {len(x)} images fitted to {shape}", DataError)
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise DataError(f"{where}: images have {x.shape[1]} channels, the model expects {channels}")
        x = np.repeat(x, channels, axis=1)
    if x.shape[2:] != (h, w):
        x = resize(x, (h, w))
    return Dataset(x, data.y, data.classes)


def fit_splits(splits: Splits, shape: tuple[int, int, int]) -> Splits:
    return Splits(fit(splits.train, shape, splits.source), fit(splits.test, shape, splits.source), splits.source)


@dataclass
class Normalize:
    """Per-channel standardisation, (x - mean) / std, with statistics of the training images."""

    mean: list[float]
    std: list[float]

    @classmethod
    def of(cls, x: np.ndarray, chunk: int = 4096) -> Normalize:
        """Channel mean and std of ``x``, accumulated in float64 chunks (no full float copy of a big set)."""
        total = np.zeros(x.shape[1])
        squares = np.zeros(x.shape[1])
        for start in range(0, len(x), chunk):
            part = to_float(x[start:start + chunk]).astype(np.float64)
            total += part.sum(axis=(0, 2, 3))
            squares += (part * part).sum(axis=(0, 2, 3))
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        return cls([float(m) for m in mean], [float(s) if s > 0 else 1.0 for s in std])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        per_channel = (1, -1, 1, 1)
        mean = np.asarray(self.mean, np.float32).reshape(per_channel)
        std = np.asarray(self.std, np.float32).reshape(per_channel)
        return (x - mean) / std


@dataclass
class Augment:
    """Random crop after zero padding (``crop`` pixels each side) and random horizontal flip.

    Works on a float batch before normalisation, so padding is black; draws from the generator
    it is given, in a fixed order (crop offsets, then flips), so a saved generator state replays it.
    """

    crop: int = 0
    flip: bool = False

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.crop:
            x = self._random_crop(x, rng)
        if self.flip:
            flipped = rng.random(len(x)) < 0.5
            x[flipped] = x[flipped, :, :, ::-1]
        return x

    def _random_crop(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.crop
        n, c, h, w = x.shape
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        top, left = rng.integers(0, 2 * p + 1, size=(2, n))
        rows = (top[:, None] + np.arange(h))[:, None, :, None]
        cols = (left[:, None] + np.arange(w))[:, None, None, :]
        return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]

    def describe(self) -> str:
        parts = ([f"crop {self.crop}"] if self.crop else []) + (["flip"] if self.flip else [])
        return ", ".join(parts) or "none"
