"""Metrics counted on the device: a batch's count stays there and is summed with the others, and the
sum is read once (one wait), so measuring accuracy adds no wait for the device to a training step or
an evaluation batch."""

from __future__ import annotations

from typing import Any

from cnngraph.arrays import namespace


def correct(logits: Any, labels: Any) -> Any:
    """How many rows of (N, C) ``logits`` have their largest value at their label, as a 0-d array beside them."""
    xp = namespace(logits)
    return (logits.argmax(axis=1) == xp.asarray(labels)).sum()


class Count:
    """A running sum of device counts, summed on the device until ``take`` reads it."""

    def __init__(self) -> None:
        self._total: Any = 0

    def add(self, count: Any) -> None:
        self._total = self._total + count

    def take(self) -> int:
        """The sum so far (the one wait), starting again from zero."""
        total, self._total = int(self._total), 0
        return total
