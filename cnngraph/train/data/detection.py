"""Detection datasets: images with a variable number of labelled boxes (and instance masks) each.

A classification ``Dataset`` has one label per image; a detection set has, per image, ``boxes``
(k, 4) as (x1, y1, x2, y2) in pixels of that image (continuous coordinates: a box covering pixel
columns 3..5 is x1=3, x2=6), ``labels`` (k,) class indices and optionally ``masks`` (k, H, W) bool.
``load_detection(spec, shape)`` reads what ``--data`` names:

- ``digit-detection``: canvases of the shipped UCI digits, generated from a seed (``detection_digits.py``);
- a Pascal VOC folder (``Annotations/*.xml`` beside ``JPEGImages/``; ``voc.py``);
- a COCO instances JSON file, or a folder holding ``annotations/instances_*.json`` (``coco.py``).

Images are fitted to the model input at load time, boxes and masks scaled with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnngraph.errors import DataError


@dataclass
class DetectionSet:
    """Images (N, C, H, W) float32 in [0, 1] and, per image, boxes, labels and optional masks."""

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    classes: list[str]
    masks: list[np.ndarray] | None = None
    ignore: list[np.ndarray] | None = field(default=None)
    """Per image, (k,) bool: boxes evaluation neither rewards nor penalises (VOC "difficult", COCO "iscrowd")."""

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index) -> DetectionSet:
        pick = lambda items: None if items is None else [items[i] for i in index]  # noqa: E731
        return DetectionSet(self.images[index], pick(self.boxes), pick(self.labels), self.classes,
                            pick(self.masks), pick(self.ignore))

    def ignored(self, i: int) -> np.ndarray:
        return np.zeros(len(self.labels[i]), bool) if self.ignore is None else self.ignore[i]


@dataclass
class DetectionSplits:
    train: DetectionSet
    test: DetectionSet
    source: str


def checked(images: np.ndarray, boxes: list, labels: list, classes: list[str], where: str,
            masks: list | None = None, ignore: list | None = None) -> DetectionSet:
    """A DetectionSet after checking every image's boxes and labels, errors naming ``where`` and the image."""
    if images.ndim != 4 or len(images) == 0:
        raise DataError(f"{where}: images must be a non-empty (N, C, H, W) array, got shape {images.shape}")
    if not len(boxes) == len(labels) == len(images):
        raise DataError(f"{where}: {len(images)} images but {len(boxes)} box lists and {len(labels)} label lists")
    height, width = images.shape[2:]
    out_boxes, out_labels = [], []
    for i, (b, y) in enumerate(zip(boxes, labels)):
        b = np.asarray(b, np.float32).reshape(-1, 4)
        y = np.asarray(y)
        if len(y) != len(b) or (len(y) and not np.issubdtype(y.dtype, np.integer)):
            raise DataError(f"{where}: image {i}: expected {len(b)} integer labels, got {y.dtype} shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{where}: image {i}: labels must be in 0..{len(classes) - 1}, found "
                            f"{int(y.min() if y.min() < 0 else y.max())}")
        bad = ~np.isfinite(b).all(axis=1) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        bad |= (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > width) | (b[:, 3] > height)
        if bad.any():
            raise DataError(f"{where}: image {i}: box {b[bad][0].tolist()} is empty or outside the "
                            f"{width}x{height} image (expected x1 < x2 <= width, y1 < y2 <= height, as x1, y1, x2, y2)")
        out_boxes.append(b)
        out_labels.append(y.astype(np.int64))
    return DetectionSet(images.astype(np.float32, copy=False), out_boxes, out_labels, list(classes), masks, ignore)


def read_resized(path: Path, shape: tuple[int, int, int], where: str) -> tuple[np.ndarray, tuple[float, float]]:
    """The image at ``path`` as float32 (C, H, W) of the model input ``shape``, and the (x, y) factors
    that take its original pixel coordinates to the resized image's (boxes are scaled by them)."""
    from cnngraph.images import read_image

    channels, height, width = shape
    found = {}

    def size(w: int, h: int) -> tuple[int, int]:
        found["size"] = (w, h)
        return width, height

    pixels = read_image(path, "L" if channels == 1 else "RGB", size, DataError, where)
    image = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    w, h = found["size"]
    return image.astype(np.float32) / np.float32(255), (width / w, height / h)


@dataclass
class Record:
    """One annotated image as a file gives it: boxes in the image's own pixels (x1, y1, x2, y2)."""

    image: Path
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray


def assemble(records: list[Record], classes: list[str], shape: tuple[int, int, int], where: str) -> DetectionSet:
    """Read and resize every record's image to the model input, scale its boxes along, clip them to the image
    and drop the ones left empty."""
    from cnngraph.limits import array_bytes, check_bytes

    if not records:
        raise DataError(f"{where}: no annotated images")
    check_bytes(array_bytes((len(records), *shape), 4), f"{where}: {len(records)} images of {shape}", DataError)
    images = np.empty((len(records), *shape), np.float32)
    boxes, labels, ignore = [], [], []
    limit = np.array([shape[2], shape[1], shape[2], shape[1]], np.float32)
    for i, r in enumerate(records):
        images[i], (fx, fy) = read_resized(r.image, shape, f"{where}: {r.image.name}")
        b = np.clip(r.boxes.reshape(-1, 4) * np.array([fx, fy, fx, fy], np.float32), 0, limit)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        boxes.append(b[keep])
        labels.append(r.labels[keep])
        ignore.append(r.ignore[keep])
    data = checked(images, boxes, labels, classes, where)
    data.ignore = ignore
    return data


def split_records(records: list[Record], test: set[str] | None, classes: list[str], shape: tuple[int, int, int],
                  source: str) -> DetectionSplits:
    """Train and test sets: the images named in ``test`` (file stems) are held out, or, without a list,
    a fixed 20% drawn with seed 0 (as ``split_off`` does for classification sets)."""
    from cnngraph.train.data import TEST_FRACTION

    if test is None:
        order = np.random.default_rng(0).permutation(len(records))
        held = set(order[:round(len(records) * TEST_FRACTION)].tolist())
        source += f" (held-out {TEST_FRACTION:.0%}, seed 0)"
    else:
        held = {i for i, r in enumerate(records) if r.image.stem in test}
    train = [r for i, r in enumerate(records) if i not in held]
    tested = [r for i, r in enumerate(records) if i in held]
    if not train or not tested:
        raise DataError(f"{source}: {len(train)} training and {len(tested)} test images; both splits need some")
    return DetectionSplits(assemble(train, classes, shape, source), assemble(tested, classes, shape, source), source)


def with_channels(data: DetectionSet, channels: int, where: str) -> DetectionSet:
    """A one-channel set repeated to ``channels`` (a grey set feeding an RGB model)."""
    have = data.images.shape[1]
    if have == channels:
        return data
    if have != 1:
        raise DataError(f"{where}: images have {have} channels, the model expects {channels}")
    return DetectionSet(np.repeat(data.images, channels, axis=1), data.boxes, data.labels, data.classes, data.masks,
                        data.ignore)


def load_detection(spec: str, shape: tuple[int, int, int], seed: int = 0) -> DetectionSplits:
    """The detection splits ``spec`` names, fitted to the model input ``shape`` = (C, H, W)."""
    from cnngraph.train.data import coco, detection_digits, voc

    if spec == "digit-detection":
        splits = detection_digits.load(size=shape[1:], seed=seed)
        return DetectionSplits(with_channels(splits.train, shape[0], spec), with_channels(splits.test, shape[0], spec),
                               splits.source)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"--data {spec}: no such file or folder (use 'digit-detection' for the shipped set)")
    if voc.find(path) is not None:
        return voc.load(voc.find(path), shape)
    found = coco.find(path)
    if found is not None:
        return coco.load(found, shape)
    raise DataError(f"--data {spec}: not a detection dataset: expected 'digit-detection', a Pascal VOC folder "
                    f"(Annotations/*.xml and JPEGImages/) or a COCO instances .json (or a folder with "
                    f"annotations/instances_*.json)")
