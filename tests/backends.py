"""The backends tests run on: NumPy always, the strict (CuPy-like) backend always, CuPy where a GPU is.

``@pytest.mark.parametrize("backend", BACKENDS)`` runs a test on each; the CuPy case carries the
``gpu`` mark and skips, saying why, on a machine without CuPy or a CUDA device.
"""

from __future__ import annotations

import pytest

from cnngraph.backends.devices import get_backend

_CUPY_MISSING = get_backend("cupy").unavailable()

BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("strict", id="strict"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu,
                                           pytest.mark.skipif(_CUPY_MISSING is not None, reason=f"cupy: {_CUPY_MISSING}")]),
]
DEVICE_BACKENDS = BACKENDS[1:]  # the ones whose arrays are not NumPy's
