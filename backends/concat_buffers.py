"""One inference run's elided Concat buffers (layout: ``cnngraph.concat_layout``).

A buffer is allocated when its first slice is needed (a producer writing into it, or a Concat
reading it) and dropped after the last Concat sharing it has run; values alive past that (views
read by later layers) keep it alive, and ``del`` in the executor frees it after their last use.
"""

from __future__ import annotations

from typing import Any

from cnngraph.concat_layout import ConcatLayout, Slot
from cnngraph.ir import Graph


class ConcatBuffers:
    def __init__(self, graph: Graph, plan: ConcatLayout, xp: Any, dtype: Any, batch: int,
                 sizes: dict[str, int] | None = None):
        self.graph, self.plan, self.xp, self.dtype, self.batch = graph, plan, xp, dtype, batch
        self.sizes = sizes or {}  # the run's named dimensions besides the batch
        self._buffers: dict[str, Any] = {}
        self._copied: set[tuple[str, int]] = set()

    def slot(self, value: str) -> Any:
        """Where the producer of a placed ``value`` writes its result."""
        return self._view(self.plan.placed[value])

    def concat(self, name: str, args: list[Any]) -> Any:
        """The output of elided Concat ``name``: its prefix of the shared buffer, with the inputs that were
        not written in place copied into their slices (each once per run)."""
        owner = self.plan.owner[name]
        slots = self.plan.slots(self.graph, owner)[: len(args)]
        for i, (value, slot, arg) in enumerate(zip(self.graph.node(name).inputs, slots, args)):
            if self.plan.placed.get(value) != slot and (owner, i) not in self._copied:
                self._view(slot)[...] = arg
                self._copied.add((owner, i))
        return self._view(Slot(owner, 0, slots[-1].stop))

    def release(self, owner: str) -> None:
        self._buffers.pop(owner, None)

    def _buffer(self, owner: str) -> Any:
        if owner not in self._buffers:
            home = self.plan.placed.get(owner)
            if home is None:
                shape = self.graph.node(owner).type.concrete(self.batch, self.sizes)
                self._buffers[owner] = self.xp.empty(shape, dtype=self.dtype)
            else:
                self._buffers[owner] = self._view(home)  # a Concat placed into an outer Concat's buffer
        return self._buffers[owner]

    def _view(self, slot: Slot) -> Any:
        return self._buffer(slot.owner)[:, slot.start : slot.stop]
