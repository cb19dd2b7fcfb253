"""CIFAR-10, binary version (``cifar-10-binary.tar.gz``: ``data_batch_1.bin`` ... ``test_batch.bin``).

Each record is 1 label byte and 3,072 pixel bytes (1,024 red, then green, then blue, row-major 32x32).
The *python* version of CIFAR-10 is a set of pickles, and unpickling a file can run arbitrary code,
so cnngraph refuses it (the project never unpickles what a user hands it) and says to fetch the
binary version of the same data instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.limits import check_bytes, read_bounded
from cnngraph.train.data import Dataset, Splits, checked

SIDE, CHANNELS, CLASSES = 32, 3, 10
RECORD = 1 + CHANNELS * SIDE * SIDE
TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST = "test_batch.bin"
PICKLE_REFUSED = ("CIFAR-10 python batches are pickles, which cnngraph never loads (unpickling can run arbitrary "
                  "code); download the binary version, cifar-10-binary.tar.gz, from https://www.cs.toronto.edu/~kriz/cifar.html")


def find(folder: Path) -> Path | None:
    """The folder holding the binary batches (``folder`` or its ``cifar-10-batches-bin``), else None."""
    for candidate in (folder, folder / "cifar-10-batches-bin"):
        if (candidate / TRAIN[0]).is_file():
            return candidate
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").is_file():
            raise DataError(f"{candidate}: {PICKLE_REFUSED}")
    return None


def read_batch(path: Path) -> Dataset:
    """One ``.bin`` batch as uint8 images (N, 3, 32, 32) and labels."""
    if not path.is_file():
        raise DataError(f"{path}: missing CIFAR-10 batch")
    raw = np.frombuffer(read_bounded(path, DataError), np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
                        "(1 label byte + 3,072 pixel bytes); truncated, or not the binary version?")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0]
    if labels.max() >= CLASSES:
        raise DataError(f"{path}: label byte {labels.max()} in a 10-class CIFAR-10 batch; "
                        "is this CIFAR-100 (2 label bytes per record)?")
    return checked(records[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE), labels.astype(np.int64), str(path))


def _class_names(folder: Path) -> list[str]:
    """The names in ``batches.meta.txt`` (one per line, UTF-8), or the label numbers without one."""
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return [str(c) for c in range(CLASSES)]
    try:
        names = read_bounded(meta, DataError).decode("utf-8").split()
    except UnicodeDecodeError as e:
        raise DataError(f"{meta}: class names are not UTF-8 text ({e.reason} at byte {e.start})") from None
    return names if len(names) == CLASSES else [str(c) for c in range(CLASSES)]


def load(folder: Path) -> Splits:
    files = [folder / name for name in TRAIN if (folder / name).is_file()]
    check_bytes(sum(f.stat().st_size for f in files), f"{folder}: CIFAR-10 training batches", DataError)
    parts = [read_batch(folder / name) for name in TRAIN]
    classes = _class_names(folder)
    train = Dataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), classes)
    test = read_batch(folder / TEST)
    return Splits(train, Dataset(test.x, test.y, classes), f"CIFAR-10 binary batches in {folder}")
