"""MNIST-style IDX files (LeCun's format; also Fashion-MNIST, KMNIST), gzipped or not.

An IDX file is two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian int32, then the data. Everything is checked against the header (magic, type, size),
so a truncated download or a swapped file fails with the file's name and what was wrong.
Gzip is recognised by its magic bytes, not the file name.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.limits import array_bytes, check_bytes, read_bounded
from cnngraph.train.data import Dataset, Splits, checked

TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLITS = {"train": "train", "test": "t10k"}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file; its size is checked against the header, the bytes present
    and the budget before anything is allocated (a gzip is inflated only as far as the header says)."""
    raw = read_bounded(path, DataError)
    stream = _gunzip if raw[:2] == GZIP_MAGIC else _plain
    head = stream(raw, 4, path)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in TYPES:
        raise DataError(f"{path}: not an IDX file (expected magic 00 00 <type> <ndim>, found {head[:4].hex(' ')})")
    ndim = head[3]
    header = 4 + 4 * ndim
    head = stream(raw, header, path)
    if len(head) < header:
        raise DataError(f"{path}: IDX header promises {ndim} dimensions but the file has {len(head)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(head, ">u4", ndim, 4))
    dtype = np.dtype(TYPES[head[2]])
    nbytes = check_bytes(array_bytes(dims, dtype.itemsize), f"{path}: IDX data {dims} ({dtype.name})", DataError)
    expected = header + nbytes
    data = stream(raw, expected + 1, path)  # one byte more tells a longer file
    if len(data) != expected:
        raise DataError(f"{path}: IDX header {dims} ({dtype.name}) needs {expected} bytes, the file has "
                        f"{'more' if len(data) > expected else len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _plain(raw: bytes, limit: int, path: Path) -> bytes:
    return raw[:limit]


def _gunzip(raw: bytes, limit: int, path: Path) -> bytes:
    """At most ``limit`` inflated bytes (concatenated gzip members included): a small bomb cannot
    inflate past what the header asked for."""
    out, rest = bytearray(), raw
    try:
        while rest and len(out) < limit:
            inflate = zlib.decompressobj(wbits=31)  # gzip framing
            out += inflate.decompress(rest, limit - len(out))
            if not inflate.eof:
                if len(out) < limit and not inflate.unconsumed_tail:
                    raise DataError(f"{path}: corrupt or truncated gzip (the stream ends early)")
                break
            rest = inflate.unused_data
    except zlib.error as e:
        raise DataError(f"{path}: corrupt or truncated gzip ({e})") from None
    return bytes(out)


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
