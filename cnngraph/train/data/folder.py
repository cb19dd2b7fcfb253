"""A folder of images per class (``root/<class>/*.png``), optionally split as ``root/train``, ``root/test``.

Classes are the sub-folder names in sorted order (torchvision's ``ImageFolder`` convention), so
label k means the same class on every machine. Images are decoded with Pillow, converted to
grayscale or RGB to match the model, and resized bilinearly to its input size as they are read,
so photos of any size can be mixed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.images import read_image
from cnngraph.limits import array_bytes, check_bytes
from cnngraph.train.data import Dataset, Splits, checked, split_off

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def decode(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    channels, h, w = shape
    if channels not in (1, 3):
        raise DataError(f"{path}: image folders feed 1- or 3-channel models, this model takes {channels}")
    arr = read_image(path, "L" if channels == 1 else "RGB", lambda *_: (w, h), DataError, str(path))
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _read(root: Path, shape: tuple[int, int, int], classes: list[str] | None = None) -> Dataset:
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"{root}: expected one sub-folder of images per class, found no sub-folders")
    if classes is not None and found != classes:
        raise DataError(f"{root}: class folders {found} differ from the training classes {classes}")
    images, labels = [], []
    for label, name in enumerate(found):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        if not files:
            raise DataError(f"{root / name}: no images (looked for {', '.join(sorted(EXTENSIONS))})")
        labels += [label] * len(files)
        check_bytes(array_bytes((len(labels), *shape), 1), f"{root}: {len(labels)} images of {shape}", DataError)
        images += [decode(f, shape) for f in files]
    return checked(np.stack(images), np.asarray(labels, np.int64), str(root), found)


def load(root: Path, shape: tuple[int, int, int]) -> Splits:
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = _read(root / "train", shape)
        return Splits(train, _read(root / "test", shape, train.classes), f"image folders {root}/train, {root}/test")
    return split_off(_read(root, shape), f"image folder {root}")
