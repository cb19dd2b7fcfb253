"""BLAS threads chosen per GEMM size, for the backends whose GEMMs run in the process's CPU BLAS.

A small GEMM finishes before a second OpenBLAS thread has started, and on a loaded machine threads
that must share cores spin: LeNet-5 trained 3.5x slower with two threads than with one. So under
``auto`` a GEMM below ``CROSSOVER_MACS`` runs on one thread and a larger one on every core that other
processes leave free (``OtherLoad``: with one busy-loop job beside it on 2 cores, ResNet-18 ran
several times slower on two threads than on one). The executor decides per node from its
multiply-accumulates and the batch, and the BLAS library is told only when the choice changes (a
direct ``set_num_threads`` costs about 2 µs; threadpoolctl's ``threadpool_limits`` context, which
rescans the loaded libraries, about 800 µs).
"""

from __future__ import annotations

import os
import time

from cnngraph.analysis import node_macs
from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph

# Where a second thread started to pay on this project's 2-core machine: np.matmul in float32 at 1 and 2
# threads over ResNet/LeNet GEMM shapes (best of 7), two threads faster from about 3e7 MACs (64x576x784).
CROSSOVER_MACS = 30_000_000
CORES = os.cpu_count() or 1  # read once: the call costs 6 µs, and a ResNet run made 35 of them
LOAD_INTERVAL_S = 0.5  # how often the other processes' CPU use is sampled
PROC_STAT = "/proc/stat"


class OtherLoad:
    """How many cores other processes keep busy: the machine's busy time (``/proc/stat``) less this
    process's own (``os.times``, all its threads), over the last ``LOAD_INTERVAL_S``. Not the load
    average, which counts this process's own BLAS threads and would make the choice oscillate. Zero
    where ``/proc/stat`` cannot be read (not Linux): every core is then taken as free."""

    def __init__(self) -> None:
        self._last: tuple[float, float, float] | None = None
        self._cores = 0.0

    def cores(self) -> float:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < LOAD_INTERVAL_S:
            return self._cores
        busy = machine_busy_seconds()
        if busy is None:
            return 0.0
        own = sum(os.times()[:2])
        if self._last is not None:
            then, busy_then, own_then = self._last
            self._cores = max(0.0, (busy - busy_then - (own - own_then)) / (now - then))
        self._last = (now, busy, own)
        return self._cores


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (not idle, not waiting for I/O), or None."""
    try:
        with open(PROC_STAT) as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class BlasThreads:
    """The process's BLAS thread count: ``auto`` (per GEMM size) or a fixed number (``--threads N``)."""

    def __init__(self) -> None:
        self.fixed: int | None = None
        self._libraries = None  # threadpoolctl's BLAS controllers, found once
        self._original: list[int] = []  # their thread counts before cnngraph changed them
        self._current: int | None = None
        self.others = OtherLoad()

    def configure(self, threads: int | None) -> None:
        """``None`` for auto; otherwise every GEMM runs on ``threads`` threads."""
        if threads is not None and threads < 1:
            raise CnnGraphError(f"--threads must be at least 1, got {threads}")
        self.fixed = threads

    def choose(self, macs: int) -> int:
        """The thread count for a GEMM of ``macs`` multiply-accumulates."""
        if self.fixed is not None:
            return self.fixed
        if macs < CROSSOVER_MACS:
            return 1
        return max(1, min(CORES, round(CORES - self.others.cores())))

    @property
    def current(self) -> int | None:
        """The thread count cnngraph last set, or None where it has not (or gave the libraries back)."""
        return self._current

    def use(self, threads: int) -> None:
        """Set the BLAS thread count, calling into the library only when it changes."""
        if threads == self._current:
            return
        if self._libraries is None:
            from threadpoolctl import ThreadpoolController

            self._libraries = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
            self._original = [library.num_threads for library in self._libraries]
        for library in self._libraries:
            library.set_num_threads(threads)
        self._current = threads

    def restore(self) -> None:
        """Give the libraries back the thread counts they had: the rest of the process is not ours."""
        if self._current is None:
            return
        for library, threads in zip(self._libraries, self._original):
            library.set_num_threads(threads)
        self._current = None


blas = BlasThreads()


class NodeThreads:
    """An executor's per-node choice: each step's multiply-accumulates per sample, known once the graph is,
    scaled by the batch when the node runs. Nodes without MACs (element-wise, shapes) leave the count
    as it is, and so does every node on a backend whose GEMMs do not run in this process's BLAS."""

    def __init__(self, graph: Graph, cpu_blas: bool) -> None:
        self.macs = [node_macs(graph, node) if cpu_blas else 0 for node in graph.nodes]

    def before(self, index: int, batch: int) -> None:
        if self.macs[index]:
            blas.use(blas.choose(self.macs[index] * batch))

    @staticmethod
    def done() -> None:
        """After a forward or backward pass: the BLAS libraries as they were."""
        blas.restore()
