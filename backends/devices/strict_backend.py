"""The strict backend: NumPy compute behind CuPy-like arrays that refuse host mixing (``backends/strict.py``).

It exists for CI, which has no GPU: a kernel, loss, optimizer or loop that hands a NumPy array to
device arrays (or asks NumPy for a device array's values) fails here as it would on CuPy.
"""

from __future__ import annotations

from typing import Any


from cnngraph.backends import strict
from cnngraph.backends.devices import register
from cnngraph.backends.devices.numpy_backend import NumpyBackend


@register
class StrictBackend(NumpyBackend):
    name = "strict"
    rank = 2
    summary = "NumPy behind arrays that refuse implicit host conversion, as CuPy's do (for tests)"

    @property
    def xp(self) -> Any:
        return strict.namespace

    def is_array(self, value: Any) -> bool:
        return isinstance(value, strict.StrictArray)

    def uniform(self, seed: int, shape: tuple[int, ...]) -> strict.StrictArray:
        return strict.StrictArray(super().uniform(seed, shape))
