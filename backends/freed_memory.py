"""Keep the memory a run or a training step frees inside the process, for the next one to reuse.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh mapping and
unmaps it on free, so each activation a step allocates at ResNet scale (a (32, 64, 112, 112) float32
array is 98 MiB) faults in zeroed pages again, every step. A ResNet-18 training step at batch 16 on
one thread took 4.1 to 4.5 s of CPU with glibc's defaults and 2.6 s with mappings off and trimming
raised to 2 GiB (``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...``, the same settings as this module
makes), 2026-11-30 on the loaded 2-core machine. Freed blocks then stay in the heap, where the next
step's allocations of the same sizes find them; the price is that the process keeps its peak step
memory until it exits, as PyTorch's caching allocators and onnxruntime's arena do. Inference gains
too: ResNet-50 at batch 8 faulted in 5,400 pages (21 MiB) a run with glibc's defaults and 2 with these
settings, and spent 20 against 40-50 ms a run in the kernel (``os.times``, two processes each).

A process-wide setting, so it is made once, by the first executor on a backend whose arrays live in
this process's heap (NumPy), only where the C library is glibc, and not at all with
``CNNGRAPH_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest, 2 GiB of free heap top before it is returned
OPT_OUT = "CNNGRAPH_KEEP_FREED_MEMORY"

_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Turn glibc's mappings for large blocks off and its heap trimming nearly off, once per process.
    True when the settings are in force."""
    global _kept
    if _kept is None:
        _kept = os.environ.get(OPT_OUT, "1") != "0" and _mallopt(M_MMAP_MAX, 0) and _mallopt(M_TRIM_THRESHOLD,
                                                                                        TRIM_THRESHOLD)
    return _kept


def _mallopt(parameter: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    return mallopt is not None and mallopt(parameter, value) == 1
