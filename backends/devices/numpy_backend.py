"""The NumPy backend: the CPU, and the reference every other backend is checked against."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.backends.devices import Backend, register


@register
class NumpyBackend(Backend):
    name = "numpy"
    summary = "NumPy on the CPU: the reference semantics, BLAS GEMMs"
    dtypes = ("float32", "float64", "float16")
    cpu_blas = True

    @property
    def xp(self) -> Any:
        return np

    def is_array(self, value: Any) -> bool:
        return isinstance(value, (np.ndarray, np.generic, int, float))

    def uniform(self, seed: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.random.default_rng(seed).random(shape, dtype=np.float32)

    def free_bytes(self) -> int | None:
        """MemAvailable from /proc/meminfo (Linux); None elsewhere."""
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None
