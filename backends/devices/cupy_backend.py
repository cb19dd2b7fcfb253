"""The CuPy backend: parameters and activations on a CUDA device (``pip install -e ".[gpu]"``).

CuPy is imported only when the backend is used, so everything else runs without it. Host data
crosses only where a user hands it over or asks for it back (``asarray`` / ``to_host``); CuPy's
own arrays refuse implicit conversion, and the strict backend checks the same discipline in CI.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

import numpy as np

from cnngraph.backends.devices import Backend, register
from cnngraph.errors import BackendError


@register
class CupyBackend(Backend):
    name = "cupy"
    rank = 1
    summary = "CuPy on a CUDA GPU: device-resident parameters and activations, float16 with float32 masters"
    dtypes = ("float32", "float64", "float16")
    # cuDNN's tensor-core convolutions read channels-last; NCHW ones are transposed inside
    prefers, lowering = "NHWC", ("channels_last",)
    # cuDNN runs float32 convolutions on TF32 tensor cores (10-bit mantissa), as PyTorch does by default
    tolerances = {**Backend.tolerances, "float32": 2e-3}

    def __init__(self):
        self._copy_streams: dict[int, Any] = {}  # one side stream per staging thread

    def _module(self) -> Any:
        try:
            return importlib.import_module("cupy")
        except ImportError:
            raise BackendError("backend 'cupy' cannot run here: cupy is not installed "
                               "(pip install -e \".[gpu]\")") from None

    def unavailable(self) -> str | None:
        try:
            cupy = self._module()
        except BackendError:
            return "cupy is not installed (pip install -e \".[gpu]\")"
        except Exception as e:  # a broken CUDA install fails at import in many ways
            return f"cupy does not import: {type(e).__name__}: {e}"
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDARuntimeError without a driver or device
            return f"no CUDA device ({type(e).__name__}: {e})"
        return None if count > 0 else "no CUDA device"

    @property
    def xp(self) -> Any:
        return self._module()

    def is_array(self, value: Any) -> bool:
        cupy = sys.modules.get("cupy")  # never imported just to answer no
        return cupy is not None and isinstance(value, cupy.ndarray)

    def uniform(self, seed: int, shape: tuple[int, ...]) -> Any:
        cupy = self.xp
        return cupy.random.default_rng(seed).random(shape, dtype=cupy.float32)

    def stage(self, host: np.ndarray, dtype: Any = None) -> Any:
        """Through pinned memory on a non-blocking side stream, from the loader's thread: the copy overlaps
        the step computing on the main stream, and this thread (not the main one) waits for it to land."""
        cupy = self.xp
        host = np.ascontiguousarray(host, dtype=dtype)
        pinned = np.frombuffer(cupy.cuda.alloc_pinned_memory(host.nbytes), host.dtype, host.size).reshape(host.shape)
        pinned[...] = host
        stream = self._copy_streams.setdefault(threading.get_ident(), cupy.cuda.Stream(non_blocking=True))
        with stream:
            device = cupy.empty(host.shape, host.dtype)
            device.set(pinned, stream=stream)
        stream.synchronize()
        return device

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, self.xp.cuda.memory.OutOfMemoryError) or isinstance(error, MemoryError)

    def free_bytes(self) -> int | None:
        """Free device memory plus what CuPy's pool holds unused."""
        cupy = self.xp
        return int(cupy.cuda.runtime.memGetInfo()[0]) + int(cupy.get_default_memory_pool().free_bytes())
