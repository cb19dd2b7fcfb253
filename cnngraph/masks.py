"""Segmentation output as a picture: per-pixel argmax over the class maps, coloured with the PASCAL VOC
palette (class 0 black, then well-separated colours), written as a PNG."""

from __future__ import annotations

import io

import numpy as np

from cnngraph.io import atomic_write_bytes


def palette(n: int) -> np.ndarray:
    """The VOC colour map: the bits of each class index spread over the high bits of R, G and B."""
    index = np.arange(n)
    colours = np.zeros((n, 3), dtype=np.uint8)
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= (((index >> (3 * bit + channel)) & 1) << (7 - bit)).astype(np.uint8)
    return colours


def mask_image(scores: np.ndarray) -> np.ndarray:
    """(C, H, W) class scores -> (H, W, 3) uint8 colours of the winning class."""
    return palette(scores.shape[0])[scores.argmax(axis=0)]


def write_mask(scores: np.ndarray, path: str) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask_image(scores)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
