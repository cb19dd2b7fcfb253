"""Identity-balanced batches for embedding losses: P identities x K images in every batch.

Batch-hard triplet mining needs, for every anchor, a positive (another image of its identity) and a
negative in the same batch; shuffled batches of a few identities with many images each rarely give
both. So each batch draws P distinct identities and K distinct images of each (every image of an identity
with fewer, then repeats of them), as in Hermans, Beyer and Leibe (2017).

For the contrastive loss the batch is laid out as a siamese batch (pair i is rows i and i + B/2,
``ContrastiveLoss``): its first half holds K/2 images of every identity, its second half the other
K/2, each slot facing an image of the same identity or of the next one in the batch, alternately, so
about half the pairs are "same" and every image is used once.

Everything is drawn from the loader's generator, so the order is fixed by the seed and a checkpoint
replays it (``Loader.state``); an unshuffled loader (the test split) draws from a fresh generator each
epoch, so its batches are the same every time it is evaluated.
"""

from __future__ import annotations

import numpy as np

from cnngraph.errors import DataError
from cnngraph.train.data import Dataset
from cnngraph.train.data.loader import Loader


def check_per_identity(per_identity: int, pairs: bool) -> None:
    """A DataError unless K images per identity give positives (and, for siamese pairs, split in two halves)."""
    if per_identity < 2 or (pairs and per_identity % 2):
        raise DataError(f"--per-identity {per_identity}: each identity needs at least 2 images in a batch "
                        f"(positives){', an even number for contrastive pairs' if pairs else ''}")


def siamese_layout(block: np.ndarray) -> np.ndarray:
    """(P, K) image indices, row p of identity p, K even -> B = P*K indices whose halves face each other:
    slot (p, j) of the first half holds block[p, j]; of the second, block[p, K/2 + j] for even j (a same
    pair) and block[p + 1, K/2 + j] for odd j (a different one, p + 1 taken modulo P)."""
    identities, k = block.shape
    half = k // 2
    p, j = np.meshgrid(np.arange(identities), np.arange(half), indexing="ij")
    partner = np.where(j % 2 == 0, p, (p + 1) % identities)
    return np.concatenate([block[:, :half].ravel(), block[partner, half + j].ravel()])


class IdentityBatches(Loader):
    """Iterating yields (x, y) batches of ``identities`` x ``per_identity`` images (grouped by identity, or
    in the siamese layout when ``pairs``); an epoch has as many batches as the data has full batches."""

    def __init__(self, data: Dataset, identities: int, per_identity: int, rng: np.random.Generator | None = None,
                 shuffle: bool = True, pairs: bool = False, where: str = "the data", **loader):
        self.members = [np.flatnonzero(data.y == c) for c in np.unique(data.y)]
        if identities < 2 or identities > len(self.members):
            raise DataError(f"identity-balanced batches of {identities} identities: {where} has "
                            f"{len(self.members)} identities, and a batch needs at least 2 (negatives)")
        check_per_identity(per_identity, pairs)
        super().__init__(data, identities * per_identity, rng, shuffle=shuffle, **loader)
        self.identities, self.per_identity, self.pairs = identities, per_identity, pairs

    @classmethod
    def of_batch(cls, data: Dataset, batch: int, per_identity: int, **kwargs) -> IdentityBatches:
        """Batches of about ``batch`` images: ``batch // per_identity`` identities, or all the data has if fewer."""
        return cls(data, min(batch // per_identity, len(np.unique(data.y))), per_identity, **kwargs)

    def __len__(self) -> int:
        return max(len(self.data) // self.batch_size, 1)

    def epoch_order(self) -> np.ndarray:
        rng = self.rng if self.shuffle else np.random.default_rng(0)
        batches = []
        for _ in range(len(self)):
            chosen = rng.choice(len(self.members), self.identities, replace=False)
            block = np.stack([self._images(self.members[c], rng) for c in chosen])
            batches.append(siamese_layout(block) if self.pairs else block.ravel())
        return np.concatenate(batches)

    def _images(self, members: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """K of an identity's images: distinct ones, then (an identity with fewer than K) repeats drawn from them."""
        distinct = rng.permutation(members)[:self.per_identity]
        return np.concatenate([distinct, rng.choice(members, self.per_identity - len(distinct))])
