"""MNIST-style IDX files (LeCun's format; also Fashion-MNIST, KMNIST), gzipped or not.

An IDX file is two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian int32, then the data. Everything is checked against the header (magic, type, size),
so a truncated download or a swapped file fails with the file's name and what was wrong.
Gzip is recognised by its magic bytes, not the file name.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.train.data import Dataset, Splits, checked

TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLITS = {"train": "train", "test": "t10k"}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file."""
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in TYPES:
        raise DataError(f"{path}: not an IDX file (expected magic 00 00 <type> <ndim>, found {raw[:4].hex(' ')})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header promises {ndim} dimensions but the file has {len(raw)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(TYPES[raw[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header {dims} ({dtype.name}) needs {expected} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _file(folder: Path, split: str, kind: str, rank: int) -> Path | None:
    """``train-images-idx3-ubyte`` and its variants (``.gz``, a dot before ``idx``)."""
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            path = folder / f"{SPLITS[split]}-{kind}{sep}idx{rank}-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def find(folder: Path) -> Path | None:
    """``folder`` if it holds MNIST training images, else None."""
    return folder if _file(folder, "train", "images", 3) else None


def _split(folder: Path, split: str) -> Dataset:
    images, labels = _file(folder, split, "images", 3), _file(folder, split, "labels", 1)
    prefix = SPLITS[split]
    if images is None or labels is None:
        raise DataError(f"{folder}: MNIST folder lacks {prefix}-images-idx3-ubyte[.gz] or {prefix}-labels-idx1-ubyte[.gz]")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3:
        raise DataError(f"{images}: expected 3 dimensions (N, H, W), the header says {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{images}: expected unsigned bytes (type 0x08), found {x.dtype}")
    return checked(x[:, None], y, str(labels))


def load(folder: Path) -> Splits:
    return Splits(_split(folder, "train"), _split(folder, "test"), f"MNIST IDX files in {folder}")
