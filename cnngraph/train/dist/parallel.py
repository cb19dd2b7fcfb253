"""What the Trainer asks of the processes a run spans: ``Single`` (one process) or ``DataParallel``.

Data parallelism as PyTorch's DistributedDataParallel does it, with the equivalence made exact:

- every rank draws the same global batch (same seed, same order, same augmentation draws) and
  trains on its contiguous shard (``sharding.shard``);
- the loss of a step is the mean over the *global* batch: one small sum of (loss x shard size,
  shard size) before backward gives it, and each rank's loss gradient is weighted by its share of
  the batch, so summing the ranks' gradients (``buckets``) gives the single-process gradient even
  when the last batch does not split evenly; the optimizer step is then the same on every rank;
- BatchNorm keeps per-rank batch statistics (DDP's default) and rank 0's running statistics are
  broadcast before each step and each evaluation, so checkpoints (rank 0's) resume exactly;
  with ``sync_bn`` the batch statistics are summed over the ranks (``sum_across``), which makes
  the run equal to one process's, running statistics included;
- evaluation is sharded too and its sums added; only rank 0 writes files.

The single-process path uses ``Single`` and imports no communication engine.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from cnngraph.arrays import namespace
from cnngraph.train.dist.buckets import DEFAULT_CAP_BYTES, BucketedAllReduce
from cnngraph.train.dist.communicator import Communicator


class Single:
    """One process: every hook is the identity."""

    rank, size, writes = 0, 1, True

    def shard(self) -> tuple[int, int] | None:
        return None

    def attach(self, model: Any, sync_bn: bool) -> None:
        pass

    def loss(self, loss: Callable) -> Callable:
        return loss

    def images(self, local: int) -> int:
        return local

    def agree(self, flag: bool) -> bool:
        return flag

    def sum(self, *values: float) -> tuple[float, ...]:
        return values

    def share_buffers(self, params: dict, keys: list[str]) -> None:
        pass


class DataParallel(Single):
    """One rank of a data-parallel run over ``comm``."""

    def __init__(self, comm: Communicator, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.comm, self.cap_bytes = comm, cap_bytes
        self.host = getattr(comm, "host", comm)  # NCCL sums device arrays; scalars go over its MPI
        self.rank, self.size, self.writes = comm.rank, comm.size, comm.rank == 0
        self.sync_bn = False
        self._images = 0

    def shard(self) -> tuple[int, int]:
        return self.rank, self.size

    def attach(self, model: Any, sync_bn: bool) -> None:
        """Rank 0's parameters everywhere, gradients summed in buckets, BatchNorm statistics shared if asked."""
        self.sync_bn = sync_bn
        self._broadcast(model.params, list(model.params), "the initial parameters")
        model.gradient_sync = BucketedAllReduce(self.comm, model, self.cap_bytes)
        if sync_bn:
            model.sum_across = lambda arrays: self._sum_arrays(model.xp, arrays)

    def _sum_arrays(self, xp: Any, arrays: list) -> list:
        flat = xp.concatenate([a.reshape(-1) for a in arrays])
        self.comm.sum(flat, "the synchronised BatchNorm statistics")
        bounds = np.cumsum([a.size for a in arrays])[:-1].tolist()
        return [part.reshape(a.shape) for part, a in zip(xp.split(flat, bounds), arrays)]

    def loss(self, loss: Callable) -> Callable:
        """``loss`` as the global batch's mean: the value over every shard, the gradient weighted by this
        shard's share of the batch (so the ranks' gradients add up to the global batch's)."""

        def global_loss(outputs, targets):
            value, grad = loss(outputs, targets)
            local = len(targets)
            total, self._images = self.sum(value * local, local)
            self._images = int(self._images)
            return total / self._images, grad * (local / self._images)

        return global_loss

    def images(self, local: int) -> int:
        """The global batch of the last step."""
        return self._images

    def agree(self, flag: bool) -> bool:
        """Whether any rank raised ``flag`` (a Ctrl-C: every rank stops after the same step)."""
        return bool(self.sum(float(flag))[0])

    def sum(self, *values: float) -> tuple[float, ...]:
        buffer = np.array(values, dtype=np.float64)
        self.host.sum(buffer, "the step's loss and counts")
        return tuple(float(v) for v in buffer)

    def share_buffers(self, params: dict, keys: list[str]) -> None:
        """Rank 0's BatchNorm running statistics on every rank (not needed with sync_bn: they agree)."""
        if not self.sync_bn:
            self._broadcast(params, keys, "the BatchNorm running statistics")

    def _broadcast(self, params: dict, keys: list[str], what: str) -> None:
        by_dtype: dict[Any, list[str]] = {}
        for key in keys:
            by_dtype.setdefault(params[key].dtype, []).append(key)
        for dtype, group in by_dtype.items():
            xp = namespace(params[group[0]])
            flat = xp.concatenate([params[k].reshape(-1) for k in group])
            self.comm.broadcast(flat, what)
            start = 0
            for k in group:
                params[k][...] = flat[start:start + params[k].size].reshape(params[k].shape)
                start += params[k].size
