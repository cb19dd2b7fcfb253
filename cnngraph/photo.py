"""A photo as a model's input, prepared as the model's training images were.

A model trained by ``cnngraph train`` records how its images were prepared (``ModelInfo``): converted
to grayscale (repeated into each channel of a colour model trained on gray images) or RGB, stretched
to the input size, scaled to [0, 1] and standardised with the training set's channel means and
deviations. A model without that record (a zoo model, torchvision weights)
gets torchvision's ImageNet evaluation transform when it takes three channels: shorter side to 256/224
of the input, centre crop, ImageNet mean and std; and a one-channel one gets grayscale, stretched, [0, 1].
"""

from __future__ import annotations

import numpy as np

from cnngraph.errors import CnnGraphError
from cnngraph.images import read_image
from cnngraph.imagenet import MEAN, RESIZE_RATIO, STD
from cnngraph.model_info import ModelInfo


def prepare_photo(path: str, shape: tuple[int, int, int], info: ModelInfo) -> tuple[np.ndarray, str]:
    """A (1, C, H, W) float32 array from the image at ``path`` for a model taking ``shape`` = (C, H, W),
    and a line saying how it was prepared."""
    channels, height, width = shape
    if channels not in (1, 3):
        raise CnnGraphError(f"--input {path}: a photo feeds a model taking 1 (grayscale) or 3 (RGB) channels; "
                            f"this one takes {channels}")
    resize = info.resize or ("imagenet" if channels == 3 else "stretch")
    mean, std, stats = info.mean, info.std, "training"
    if mean is None and resize == "imagenet":
        mean, std, stats = MEAN.tolist(), STD.tolist(), "ImageNet"
    gray = channels == 1 or bool(info.grayscale)
    img = read_image(path, "L" if gray else "RGB", _sizer(resize, height, width), CnnGraphError, f"--input {path}")
    top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
    pixels = img[top:top + height, left:left + width].astype(np.float32) / np.float32(255)
    x = np.repeat(pixels[None], channels, axis=0) if gray else pixels.transpose(2, 0, 1)
    if mean is not None:
        x = (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    how = "shorter side resized and centre-cropped" if resize == "imagenet" else "resized"
    normalised = f"normalised ({stats} mean/std)" if mean is not None else "scaled to [0, 1]"
    mode = "RGB" if not gray else "grayscale" if channels == 1 else f"grayscale in {channels} channels"
    return x[None], f"{mode}, {how} to {width}x{height}, {normalised}"


def _sizer(resize: str, height: int, width: int):
    """(width, height) of the photo -> (width, height) to resize it to, before any crop."""
    if resize == "stretch":
        return lambda w, h: (width, height)

    def shorter_side_to_crop(w: int, h: int) -> tuple[int, int]:
        scale = round(min(height, width) * RESIZE_RATIO) / min(w, h)
        return max(width, round(w * scale)), max(height, round(h * scale))

    return shorter_side_to_crop
