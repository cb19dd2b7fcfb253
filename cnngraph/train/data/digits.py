"""The shipped default dataset: the UCI "Optical Recognition of Handwritten Digits" set.

Source: E. Alpaydin and C. Kaynak (1998), UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49, licensed CC BY 4.0. The file ``cnngraph/data/digits.csv.gz`` holds
its 1,797 preprocessed 8x8 images (integers 0..16, 64 per row, row-major) followed by the label.

The split is fixed: the first 1,437 rows train, the last 360 test (about 36 per class), so every run
and every paper-style number refers to the same held-out images.
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from cnngraph.train.data import Splits, checked

N_TRAIN = 1437
SOURCE = "UCI handwritten digits (Alpaydin & Kaynak 1998, CC BY 4.0)"


def load() -> Splits:
    """Train and test splits as float32 images in [0, 1], shape (N, 1, 8, 8)."""
    with resources.files("cnngraph").joinpath("data/digits.csv.gz").open("rb") as raw, gzip.open(raw) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x = (table[:, :64].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    data = checked(x, table[:, 64], SOURCE)
    return Splits(data.take(np.arange(N_TRAIN)), data.take(np.arange(N_TRAIN, len(data))),
                  f"{SOURCE}: first {N_TRAIN} rows train, last {len(data) - N_TRAIN} test")
