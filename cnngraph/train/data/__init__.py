"""Datasets for training: what ``--data digits|PATH`` names, read into arrays and split.

``load_dataset(spec, shape)`` returns train and test splits whose images already fit the model's
input ``(C, H, W)`` (resized and channel-matched once, at load time). Formats, chosen by what the
path holds:

- ``digits``: the UCI handwritten digits that ship with cnngraph (``digits.py``);
- a folder with MNIST IDX files, gzipped or not (``idx.py``);
- a folder with the CIFAR-10 *binary* batches (``cifar.py``; the python batches are pickles and
  are refused);
- a ``.npz`` with ``x``/``y`` (and optionally ``x_test``/``y_test``) arrays (``npz.py``);
- any other folder: one sub-folder of images per class, optionally under ``train/`` and ``test/``
  (``folder.py``).

A format without its own test split gets a fixed one: 20% of the samples, drawn with seed 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnngraph.errors import DataError

TEST_FRACTION = 0.2
MAX_CLASSES = 2**20
"""Labels at or past this are corrupt, not classes: ImageNet-21k has 21,841, and a label of 10^12
would otherwise build 10^12 class names (and a classifier to match)."""


@dataclass
class Dataset:
    """Images ``x`` (N, C, H, W) as uint8 (0..255) or float32 (0..1), integer labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Dataset:
        return Dataset(self.x[index], self.y[index], self.classes)


@dataclass
class Splits:
    """A training and a held-out set, and a line saying where they came from."""

    train: Dataset
    test: Dataset
    source: str


def checked(x: np.ndarray, y: np.ndarray, where: str, classes: list[str] | None = None) -> Dataset:
    """A Dataset after checking shapes and labels, with errors naming ``where``."""
    if x.ndim != 4:
        raise DataError(f"{where}: images must be (N, C, H, W), got shape {x.shape}")
    if x.size == 0:
        raise DataError(f"{where}: no images (shape {x.shape}); a dataset needs at least one non-empty image")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: expected {len(x)} labels for {len(x)} images, got label shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= MAX_CLASSES:
        bad = y.min() if y.min() < 0 else y.max()
        raise DataError(f"{where}: labels must be in [0, {MAX_CLASSES:,}), found {bad}")
    count = int(y.max()) + 1
    return Dataset(x, y.astype(np.int64), classes or [str(c) for c in range(count)])


def split_off(data: Dataset, source: str, fraction: float = TEST_FRACTION) -> Splits:
    """A fixed held-out split for formats that have none: ``fraction`` of the samples, drawn with seed 0."""
    order = np.random.default_rng(0).permutation(len(data))
    n_test = round(len(data) * fraction)
    if n_test == 0 or n_test == len(data):
        raise DataError(f"{source}: {len(data)} samples are too few to hold out {fraction:.0%} for testing")
    return Splits(data.take(np.sort(order[n_test:])), data.take(np.sort(order[:n_test])),
                  f"{source} (held-out {fraction:.0%}, seed 0)")


def load_dataset(spec: str, shape: tuple[int, int, int]) -> Splits:
    """The splits named by ``spec``, fitted to the model input ``shape`` = (C, H, W)."""
    from cnngraph.train.data import cifar, digits, folder, idx, npz
    from cnngraph.train.data.transforms import fit_splits

    if spec == "digits":
        return fit_splits(digits.load(), shape)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"--data {spec}: no such file or folder (use 'digits' for the shipped dataset)")
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"--data {spec}: a file must be a .npz with x/y arrays; for images give a folder")
        return fit_splits(npz.load(path), shape)
    for module in (idx, cifar):
        found = module.find(path)
        if found is not None:
            return fit_splits(module.load(found), shape)
    return folder.load(path, shape)
