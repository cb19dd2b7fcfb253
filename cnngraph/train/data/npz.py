"""``.npz`` archives with ``x`` (N, H, W) or (N, C, H, W) images and ``y`` (N,) integer labels.

Optional ``x_test``/``y_test`` give the held-out split; otherwise a fixed 20% is held out.
Read through ``cnngraph.npzfile``: headers are checked against the bytes present and the size
budget before any data is read, and an archive holding object arrays is refused, never unpickled.
uint8 images are read as 0..255, float images as they are (normalisation adapts to their range).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.npzfile import Npz
from cnngraph.train.data import Dataset, Splits, checked, split_off


def _pair(archive, path: Path, x_key: str, y_key: str) -> Dataset:
    where = f"{path}: {x_key}/{y_key}"
    x, y = archive.read(x_key), archive.read(y_key)
    if x.ndim == 3:
        x = x[:, None]
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"{where}: images must be uint8 or float, got dtype {x.dtype}")
        x = x.astype(np.float32)
    return checked(x, y, where)


def load(path: Path) -> Splits:
    with Npz(path, DataError) as archive:
        keys = set(archive.keys)
        if not {"x", "y"} <= keys:
            raise DataError(f"{path}: expected arrays 'x' and 'y', found {sorted(keys) or 'none'}")
        data = _pair(archive, path, "x", "y")
        if len({"x_test", "y_test"} & keys) == 1:
            have, lack = sorted({"x_test", "y_test"} & keys)[0], sorted({"x_test", "y_test"} - keys)[0]
            raise DataError(f"{path}: has '{have}' but no '{lack}'; give both for a test split, or neither")
        if {"x_test", "y_test"} <= keys:
            return Splits(data, _pair(archive, path, "x_test", "y_test"), f"{path}")
        return split_off(data, str(path))
