"""Data parallelism: one process per worker, each training on its shard of every global batch.

The communication engines are the field's own: MPI through ``mpi4py`` (CPU arrays, local processes
or many machines) and NCCL through ``cupy.cuda.nccl`` (device arrays, one process per GPU, its id
shared over MPI). Nothing here imports either until a run asks for it (``connect``): a
single-process run never loads MPI.

- ``communicator``: the interface data parallelism needs (sum, broadcast) and its MPI engine, with
  the fault watch (heartbeats, a timeout, the rank that died or hangs named in one line).
- ``nccl``: the same interface over NCCL, on the device.
- ``buckets``: gradients all-reduced in buckets started while backward still runs.
- ``sharding``: which part of a global batch a rank takes.
- ``parallel``: what the Trainer asks of a run's processes (``Single`` or ``DataParallel``).
- ``launch``: ``cnngraph train --workers N`` as ``mpiexec -n N``, and whether this process is a rank.
- ``watch``: the launcher's watch over its ranks (which one died) and a failing rank's report line.
"""

from __future__ import annotations

from cnngraph.train.dist.launch import world_size


def connect(backend: str = "numpy", timeout: float | None = None):
    """The communicator for this process's rank: NCCL on ``cupy``, MPI otherwise (imports them only now)."""
    from cnngraph.train.dist.communicator import MpiCommunicator

    mpi = MpiCommunicator(timeout=timeout)
    if backend != "cupy":
        return mpi
    from cnngraph.train.dist.nccl import NcclCommunicator

    return NcclCommunicator(mpi)


__all__ = ["connect", "world_size"]
