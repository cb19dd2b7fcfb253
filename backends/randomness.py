"""Dropout's randomness, drawn on the backend's device and resumable from two integers.

Device generators (cuRAND's) cannot be saved and restored, so no generator lives across draws:
draw k of a run seeded s comes from a fresh generator seeded by ``SeedSequence([s, k])``. The
state is ``(seed, draws)``, JSON in a checkpoint, and a resumed run draws exactly the masks the
uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Randomness:
    def __init__(self, backend: Any, seed: int = 0):
        self.backend, self.seed, self.draws = backend, int(seed), 0

    def uniform(self, shape: tuple[int, ...]) -> Any:
        """Uniform [0, 1) float32 numbers of ``shape`` on the device; each call draws anew."""
        key = int(np.random.SeedSequence([self.seed, self.draws]).generate_state(1, np.uint64)[0])
        self.draws += 1
        return self.backend.uniform(key, tuple(shape))

    def state(self) -> dict:
        return {"seed": self.seed, "draws": self.draws}

    def load_state(self, state: dict) -> None:
        self.seed, self.draws = int(state["seed"]), int(state["draws"])
