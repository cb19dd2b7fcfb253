"""A batch a few images (or channels, or rows) at a time, the chunks spread over the cores.

Kernels that walk a large array in chunks of images, or of channels where those are independent (so
that each chunk's copies, transforms and passes stay in cache: Winograd, im2col, pooling, BatchNorm)
hand each chunk to a worker thread, with the BLAS on one thread inside each. NumPy releases the GIL in
its copies, ufuncs and GEMMs, so the single-threaded parts (im2col and Winograd's gathers, transforms
and scatters) run on every core too, where one GEMM on two BLAS threads leaves them on one: Winograd
on 56x56x64 at batch 32 took 39 ms on two workers against 66 ms with the chunks in turn and two BLAS
threads per GEMM. With fewer images than cores (batch 1) the kernels cut something else so that every
core has a share: bands of output rows or tile rows, input or output channels, pooling's channel planes,
Linear's output features.

Workers, not BLAS threads, are how inference and training use the cores: OpenBLAS's threads spin for
about 0.1 s after a multi-threaded GEMM (``benchmark.SETTLE_S``), and a worker that runs beside a spinning
thread shares its core with it. Against the previous rule (inference on workers only from 1.5e9 MACs,
BLAS threads below), each rule in its own process (alternating in one process without a pause, the
workers ran beside the threads the other rule had left spinning and looked 25% slower), ResNet-18 at
batch 1 ran in 0.55x to 0.99x the time (median of six pairs 0.82x), at batch 8 0.37x to 0.64x,
ResNet-50 at batch 8 0.76x to 0.91x.

The results come back in chunk order, and sums over chunks are added in that order by the caller, so
the numbers do not depend on how many workers ran (OpenBLAS splits a GEMM's rows and columns between
its threads, never the inner sum), nor on the load: a resumed training run repeats the interrupted one
bit for bit on the machine. The chunks themselves follow the core count (``CORES``), so a machine with
another core count may differ in the last bits of sums over chunks, and of convolutions at batches
below it (their GEMMs are cut differently).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import numpy as np

from cnngraph.backends import strict
from cnngraph.backends.threads import CORES, blas

T = TypeVar("T")

# The array namespaces whose kernels compute on this process's cores (CuPy's queue work for a device, and
# a CUDA graph's capture must see it all on one stream): only these spread chunks over threads.
HOST_NAMESPACES = (np, strict.namespace)

# What one element of one NumPy pass (a copy, a ufunc) is worth in GEMM multiply-accumulates, for memory-bound
# kernels to weigh workers as GEMMs do (``blas.choose``): on one core of this project's machine a float32
# GEMM runs about 40 G MACs/s, a pass over float32 values 1 to 3 G elements/s.
PASS_MACS = 20

PASS_CHUNK_BYTES = 4 << 20  # memory-bound kernels' chunks: what their passes go through while it is in cache

_pools: dict[int, ThreadPoolExecutor] = {}
# A forked child inherits the pools but not their threads: work handed to them would wait forever.
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_pools.clear)


def on_host(xp: Any) -> bool:
    """Whether ``xp``'s kernels compute on this process's cores (so that cutting them up can use more)."""
    return xp in HOST_NAMESPACES


def too_few_images(xp: Any, n: int) -> bool:
    """Whether a batch of ``n`` leaves a core of this process without an image: a kernel on a host namespace
    then cuts rows or channels instead (a device's kernels run whole)."""
    return n < CORES and on_host(xp)


def over_chunks(xp: Any, work: Callable[[slice], T], n: int, step: int, macs: int,
                gemm_macs: int | None = None) -> list[T]:
    """``work(part)`` for each slice of ``step`` of ``n`` (images, rows, channels), as a list in order.

    ``step`` is cut so that every core has a chunk (``CORES``): a fixed count, not the load of the
    moment, so the chunks, and sums over them, are the same from run to run on a machine. Where a
    kernel's own rule gives one chunk (ResNet's 7x7x512 Winograd at batch 32, whose 38 MB of transformed
    filters every chunk reads), two chunks on two workers still ran faster (27 against 32 ms; 14x14x256
    at batch 8: 8.7 against 15.5 ms). ``macs`` is the multiply-accumulates of all chunks: the chunks run
    on as many workers as ``blas.choose`` gives them (BLAS on one thread in each, then back to what it
    was), or in turn, with the BLAS threads ``blas.choose`` gives one GEMM of ``gemm_macs`` or, without
    it, as the executor set them for the node. ``work`` must not set BLAS threads: the setting is the
    process's.
    """
    step = max(1, min(step, -(-n // CORES)))
    chunks = [slice(start, min(n, start + step)) for start in range(0, n, step)]
    workers = min(len(chunks), blas.choose(macs)) if on_host(xp) else 1
    if workers < 2:
        if gemm_macs is not None:
            blas.use(blas.choose(gemm_macs))
        return [work(part) for part in chunks]
    before = blas.current
    blas.use(1)
    try:
        return _shared(work, chunks, workers)
    finally:
        if before is not None:
            blas.use(before)


def _shared(work: Callable[[slice], T], chunks: list[slice], workers: int) -> list[T]:
    """Every chunk through ``work`` on this thread and ``workers - 1`` pool threads, each taking the next
    chunk as it finishes one. The calling thread works too: at batch 1 its caches hold the layer's input,
    and one thread fewer is woken."""
    if workers - 1 not in _pools:
        _pools[workers - 1] = ThreadPoolExecutor(workers - 1, thread_name_prefix="cnngraph-chunks")
    results: list = [None] * len(chunks)
    queue = iter(enumerate(chunks))
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                index, part = next(queue, (None, None))
            if part is None:
                return
            results[index] = work(part)

    helpers = [_pools[workers - 1].submit(drain) for _ in range(workers - 1)]
    try:
        drain()
    finally:
        for helper in helpers:
            helper.result()
    return results


def over_parts(xp: Any, work: Callable[[slice], T], n: int, part_bytes: int, elements: int, passes: int) -> list[T]:
    """``over_chunks`` for memory-bound kernels: ``n`` parts (images, or channels) of ``part_bytes`` each, in
    chunks of about ``PASS_CHUNK_BYTES``; ``passes`` over ``elements`` weigh the workers."""
    return over_chunks(xp, work, n, max(1, PASS_CHUNK_BYTES // part_bytes), elements * passes * PASS_MACS)


def summed_in_order(parts: list):
    """The sum of chunks' partial results, added in chunk order into the first (the kernels' own fresh arrays),
    so that the sum does not depend on which worker finished first."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total
