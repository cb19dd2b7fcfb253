"""Which samples of a global batch a rank takes: contiguous, nearly equal parts, in rank order.

Concatenating the ranks' shards gives the global batch back in its order, so N ranks see exactly
the samples one process would, split. Sizes differ by at most one (``numpy.array_split``'s rule).
"""

from __future__ import annotations

from cnngraph.errors import TrainingError


def shard(count: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s part of ``count`` items split over ``size`` ranks."""
    base, extra = divmod(count, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def check_batches(name: str, samples: int, batch: int, size: int) -> None:
    """Every rank must get at least one sample of every batch (the last one is the short one)."""
    last = samples - (-(-samples // batch) - 1) * batch
    if min(batch, last) < size:
        raise TrainingError(f"{name}: batches of {batch} over {samples} samples end with a batch of {last}, "
                            f"fewer than the {size} workers; pick a batch size that leaves each worker a sample")
