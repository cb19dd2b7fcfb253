"""The communicator over NCCL (``cupy.cuda.nccl``): gradients summed on the device, no host round trip.

One process per GPU: a rank takes the GPU of its local rank on its node (``MPI_LOCALRANKID``
from MPICH, ``OMPI_COMM_WORLD_LOCAL_RANK`` from Open MPI). Rank 0 makes the NCCL unique id and
it reaches the others over MPI (the ``host`` communicator, which also carries the step's scalars
and the fault watch's heartbeats). A sum runs on a stream of its own that first waits for the
compute stream (the bucket's copies are queued there), so a bucket travels while backward goes on;
waiting for it polls its CUDA event under the fault watch's deadline, and on a fault the NCCL
communicator is aborted so no kernel waits forever for a dead rank.

This has never run on a GPU: the tests drive it with stand-ins for CuPy and NCCL.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cnngraph.errors import DistributedError
from cnngraph.train.dist.communicator import Communicator, MpiCommunicator, Pending

LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK")
_UNIQUE_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES: the id is 128 chars, which CuPy hands over as ints


def local_rank() -> int:
    for name in LOCAL_RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class _NcclPending(Pending):
    def __init__(self, owner: NcclCommunicator, event: Any, what: str, number: int):
        self.owner, self.event, self.what, self.number = owner, event, what, number

    def test(self) -> bool:
        return bool(self.event.done)

    def wait(self) -> None:
        try:
            self.owner.host.watch.wait(self.test, self.what, self.number)
        except DistributedError:
            self.owner.comm.abort()
            raise


class NcclCommunicator(Communicator):
    """Sums and broadcasts of CuPy arrays over NCCL; ``host`` (MPI) for the id, scalars and the fault watch."""

    def __init__(self, host: MpiCommunicator, cupy: Any = None, nccl: Any = None):
        if cupy is None:
            try:
                import cupy
                from cupy.cuda import nccl
            except ImportError:
                raise DistributedError("--backend cupy with several workers needs CuPy with NCCL: "
                                       "pip install -e \".[gpu,dist]\"") from None
        self.cupy, self.nccl, self.host = cupy, nccl, host
        self.rank, self.size = host.rank, host.size
        cupy.cuda.Device(local_rank() % cupy.cuda.runtime.getDeviceCount()).use()
        uid = np.zeros(_UNIQUE_ID_BYTES, dtype=np.int64)
        if self.rank == 0:
            uid[:] = nccl.get_unique_id()
        host.broadcast(uid, "the NCCL unique id")
        self.comm = nccl.NcclCommunicator(self.size, tuple(int(v) for v in uid), self.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                       np.dtype(np.float16): nccl.NCCL_FLOAT16}

    def _type(self, buffer: Any, what: str) -> int:
        if np.dtype(buffer.dtype) not in self._types:
            raise DistributedError(f"{what}: NCCL sums float16, float32 and float64 here, got {buffer.dtype}")
        return self._types[np.dtype(buffer.dtype)]

    def _after_compute(self, what: str) -> int:
        """Enter a collective (heartbeats over MPI); the NCCL stream waits for what the compute stream queued."""
        number = self.host.watch.enter()
        self.stream.wait_event(self.cupy.cuda.get_current_stream().record())
        return number

    def start_sum(self, buffer: Any, what: str) -> _NcclPending:
        kind = self._type(buffer, what)
        number = self._after_compute(what)
        ptr = buffer.data.ptr
        self.comm.allReduce(ptr, ptr, buffer.size, kind, self.nccl.NCCL_SUM, self.stream.ptr)
        return _NcclPending(self, self.stream.record(), what, number)

    def broadcast(self, buffer: Any, what: str, root: int = 0) -> Any:
        kind = self._type(buffer, what)
        number = self._after_compute(what)
        self.comm.bcast(buffer.data.ptr, buffer.size, kind, root, self.stream.ptr)
        _NcclPending(self, self.stream.record(), what, number).wait()
        return buffer

    def close(self) -> None:
        self.comm.destroy()
        self.host.close()

    def fail(self, line: str) -> None:
        self.comm.abort()
        self.host.fail(line)
