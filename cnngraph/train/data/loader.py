"""Batches of float images: seeded shuffling, augmentation, normalisation, and a resumable position.

One generator draws each epoch's order and then the augmentation of each batch, in that fixed
sequence. ``state()`` captures the generator's ``bit_generator.state``, this epoch's order and the
position in it: restoring them replays the remaining batches bit for bit, even mid-epoch.

Data parallelism: with ``shard=(rank, size)`` every rank draws the same global batch (order and
augmentation alike, so the generators stay in step) and yields its part of it
(``cnngraph.train.dist.sharding``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from cnngraph.train.data import Dataset
from cnngraph.train.dist.sharding import shard as shard_of
from cnngraph.train.data.transforms import Augment, Normalize, to_float


class Loader:
    """Iterating yields the rest of the current epoch as (x float32 (B, C, H, W), y int64 (B,))."""

    def __init__(self, data: Dataset, batch_size: int, rng: np.random.Generator | None = None, shuffle: bool = True,
                 augment: Augment | None = None, normalize: Normalize | None = None,
                 shard: tuple[int, int] | None = None):
        self.data, self.batch_size, self.shard = data, batch_size, shard
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.shuffle, self.augment, self.normalize = shuffle, augment, normalize
        self.order: np.ndarray | None = None
        self.position = 0  # batches of this epoch already handed out

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.order is None:
            self.order = self.epoch_order()
        while self.position < len(self):
            index = self.order[self.position * self.batch_size:(self.position + 1) * self.batch_size]
            part = slice(None) if self.shard is None else shard_of(len(index), *self.shard)
            if self.augment is None:
                index = index[part]
            x = to_float(self.data.x[index])
            if self.augment is not None:  # drawn for the whole batch, so every rank's generator stays in step
                x, index = self.augment(x, self.rng)[part], index[part]
            if self.normalize is not None:
                x = self.normalize(x)
            self.position += 1
            yield x, self.data.y[index]
        self.order, self.position = None, 0

    def epoch_order(self) -> np.ndarray:
        """The indices of one epoch, batch after batch (drawn from ``rng`` when shuffling)."""
        return self.rng.permutation(len(self.data)) if self.shuffle else np.arange(len(self.data))

    # -- checkpoints ---------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able generator state and position, arrays) for a checkpoint."""
        arrays = {} if self.order is None else {"order": self.order}
        return {"rng": self.rng.bit_generator.state, "position": self.position}, arrays

    def load_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.rng.bit_generator.state = meta["rng"]
        self.position = int(meta["position"])
        self.order = arrays.get("order")
