"""Static memory planning for activations: lifetimes from the schedule, buffer reuse, in-place ops.

The plan assigns every node's output to a buffer. A value's buffer returns to the free pool after
its last reader runs; a new value takes the smallest free buffer that fits (best fit), else a
fresh one. An op with the ``in_place`` trait (element-wise) whose input dies at it writes in place.
Sizes are for a given batch size, since the batch dimension stays symbolic in the graph.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from cnngraph.errors import DeviceMemoryError
from cnngraph.ir import Graph
from cnngraph.limits import check_bytes
from cnngraph.ops import get_op


@dataclass
class MemoryPlan:
    batch: int
    itemsize: int
    buffer_of: dict[str, int] = field(default_factory=dict)  # value -> buffer id
    buffer_bytes: list[int] = field(default_factory=list)
    in_place: set[str] = field(default_factory=set)  # nodes that overwrite their input
    unplanned_bytes: int = 0  # every activation kept alive: what a plan-less executor holds

    @property
    def planned_bytes(self) -> int:
        """The arena: the sum of all buffers the plan uses."""
        return sum(self.buffer_bytes)


def last_uses(graph: Graph) -> dict[str, int]:
    """Schedule index of the last node reading each value; graph outputs live past the end."""
    last: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[v] = i
    for v in graph.outputs:
        last[v] = len(graph.nodes)
    return last


def plan(graph: Graph, batch: int = 1, dtype: str = "float32", sizes: Mapping[str, int] | None = None) -> MemoryPlan:
    """``sizes`` gives the named dimensions besides the batch (regions ``R``); one not given counts as ``batch``."""
    itemsize = np.dtype(dtype).itemsize
    result = MemoryPlan(batch, itemsize)
    last = last_uses(graph)
    free: list[int] = []
    for i, node in enumerate(graph.nodes):
        size = math.prod(node.type.concrete(batch, sizes)) * itemsize
        result.unplanned_bytes += size
        src = node.inputs[0] if node.inputs else None
        if get_op(node.op).in_place and src in result.buffer_of and last.get(src) == i:
            result.buffer_of[node.name] = result.buffer_of[src]
            result.in_place.add(node.name)
        else:
            result.buffer_of[node.name] = _take(free, result.buffer_bytes, size)
        for v in set(node.inputs):
            if v in result.buffer_of and last.get(v) == i and result.buffer_of[v] != result.buffer_of[node.name]:
                free.append(result.buffer_of[v])
        if last.get(node.name) is None:  # nothing reads it and it is no output
            free.append(result.buffer_of[node.name])
    return result


def _take(free: list[int], sizes: list[int], size: int) -> int:
    """Best fit among free buffers (growing the largest if none fits), else a new buffer."""
    fitting = [b for b in free if sizes[b] >= size]
    if fitting:
        best = min(fitting, key=lambda b: sizes[b])
    elif free:
        best = max(free, key=lambda b: sizes[b])
        sizes[best] = size
    else:
        sizes.append(size)
        return len(sizes) - 1
    free.remove(best)
    return best


def workspace_bytes(graph: Graph, batch: int = 1, dtype: str = "float32") -> int:
    """The largest transient one kernel builds beside its output (``Op.workspace``): a padded copy,
    im2col columns. Kernels run one at a time, so the largest counts, not the sum."""
    itemsize = np.dtype(dtype).itemsize
    largest = 0
    for node in graph.nodes:
        inputs = [graph.type_of(v) for v in node.inputs]
        largest = max(largest, get_op(node.op).workspace(node.attrs, inputs, node.type))
    return largest * batch * itemsize


def check_budget(graph: Graph, batch: int, dtype: str, training: bool, shapes: dict[str, tuple],
                 sizes: Mapping[str, int] | None = None) -> None:
    """Refuse a run whose activations would not fit the size budget, before its first kernel: a graph
    that verifies at (N, 3, 10^5, 10^5) would otherwise die deep in a layer with MemoryError. Training
    keeps every activation for backward (unplanned bytes); inference reuses buffers (planned bytes);
    either adds the largest kernel workspace."""
    memory = plan(graph, batch, dtype, sizes)
    needed = (memory.unplanned_bytes if training else memory.planned_bytes) + workspace_bytes(graph, batch, dtype)
    given = ", ".join(f"'{k}' {tuple(v)}" for k, v in shapes.items()) or "no inputs"
    check_bytes(needed, f"graph '{graph.name}': activations and kernel workspace for input {given} ({dtype}"
                f"{', kept for backward' if training else ''})", DeviceMemoryError)
