"""Gradients summed over the ranks in buckets, each started as soon as all its gradients exist.

Backward runs in reverse schedule order, so a parameter's gradient is final once the earliest
node that uses it (in schedule order) has run its backward. Parameters are grouped, in the order
their gradients become final, into buckets of about ``cap_bytes`` (PyTorch DDP's default is 25 MB);
when a bucket's last gradient arrives, it is copied into the bucket's flat buffer and its sum starts
(non-blocking), while backward goes on with earlier layers. ``finish`` waits for every bucket and
hands the summed gradients to the optimizer as views of the buffers.

The layout is the same on every rank (same graph, same trainable keys), so every rank starts the
same buckets in the same order, as MPI and NCCL require. A node that backward skipped (no gradient
reached it) leaves its keys for ``finish``, which fills them with the zeros backward gave them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnngraph.train.dist.communicator import Communicator, Pending

DEFAULT_CAP_BYTES = 25 * 2**20


@dataclass
class Bucket:
    keys: list[str]
    offsets: dict[str, tuple[int, int]]  # key -> (start, stop) in the flat buffer
    buffer: Any
    waiting: set[str] = field(default_factory=set)  # keys whose gradient has not arrived this step
    pending: Pending | None = None


class BucketedAllReduce:
    """The training executor's ``gradient_sync``: ``node_done`` after each node's backward, ``finish`` after all."""

    def __init__(self, comm: Communicator, executor: Any, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.comm, self.executor, self.cap_bytes = comm, executor, cap_bytes
        self._layouts: dict[tuple[str, ...], tuple[list[Bucket], dict[str, list[str]]]] = {}
        self.buckets: list[Bucket] = []
        self._final_at: dict[str, list[str]] = {}  # node name -> keys whose gradient is final after it

    def _layout(self, keys: tuple[str, ...]) -> tuple[list[Bucket], dict[str, list[str]]]:
        """Buckets for these trainable keys (built once per set: freezing changes it)."""
        if keys not in self._layouts:
            first_use: dict[str, tuple[int, str]] = {}
            for step in self.executor.steps:
                for key in step.node.params.values():
                    if key in keys and key not in first_use:
                        first_use[key] = (step.index, step.node.name)
            ready_order = sorted(keys, key=lambda k: -first_use[k][0])
            final_at: dict[str, list[str]] = {}
            for key in ready_order:
                final_at.setdefault(first_use[key][1], []).append(key)
            self._layouts[keys] = (self._pack(ready_order), final_at)
        return self._layouts[keys]

    def _pack(self, ready_order: list[str]) -> list[Bucket]:
        params, xp = self.executor.params, self.executor.xp
        groups: list[list[str]] = [[]]
        size = 0
        for key in ready_order:
            if groups[-1] and size + params[key].nbytes > self.cap_bytes:
                groups.append([])
                size = 0
            groups[-1].append(key)
            size += params[key].nbytes
        buckets = []
        for keys in filter(None, groups):
            offsets, start = {}, 0
            for key in keys:
                offsets[key] = (start, start + params[key].size)
                start += params[key].size
            buckets.append(Bucket(keys, offsets, xp.empty(start, dtype=params[keys[0]].dtype)))
        return buckets

    def begin(self, keys: list[str]) -> None:
        """Before a backward over these trainable keys."""
        self.buckets, self._final_at = self._layout(tuple(keys))
        for bucket in self.buckets:
            bucket.waiting, bucket.pending = set(bucket.keys), None

    def node_done(self, node: str, grads: dict[str, Any]) -> None:
        """After ``node``'s backward: the gradients it completed go to their buckets; full buckets start."""
        for key in self._final_at.get(node, ()):
            if key in grads:
                self._put(key, grads[key])
        for bucket in self.buckets:
            if bucket.pending is not None:
                bucket.pending.test()

    def _put(self, key: str, grad: Any) -> None:
        bucket = next(b for b in self.buckets if key in b.offsets)
        start, stop = bucket.offsets[key]
        bucket.buffer[start:stop] = grad.reshape(-1)
        bucket.waiting.discard(key)
        if not bucket.waiting and bucket.pending is None:
            number = self.buckets.index(bucket)
            bucket.pending = self.comm.start_sum(bucket.buffer, f"the gradient all-reduce (bucket {number})")

    def finish(self, grads: dict[str, Any]) -> dict[str, Any]:
        """The gradients summed over the ranks, as views of the buckets (in order: start what is left, wait all)."""
        for bucket in self.buckets:
            for key in sorted(bucket.waiting, key=bucket.keys.index):
                self._put(key, grads[key])
        summed = dict(grads)
        for bucket in self.buckets:
            bucket.pending.wait()
            for key, (start, stop) in bucket.offsets.items():
                summed[key] = bucket.buffer[start:stop].reshape(grads[key].shape)
        return summed
