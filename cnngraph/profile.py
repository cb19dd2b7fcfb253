"""Where a model's inference time goes: per layer and per op class, with each one's share of the whole
run, the GFLOP/s each layer with multiply-accumulates achieves, the kernel choice (implementation) each
layer ran with, and the memory plan's peak.

Layers are timed through the executor's ``watch`` hook, which sees each node's output as soon as it is
computed (after a device synchronisation, so a GPU's queued work is charged to the layer that queued
it): a layer's time runs from the previous node's hand-off to its own, so the kernels' time and the
executor's per-node bookkeeping are charged to the layers and the layer times add up to the run. The
whole run is timed in the same calls, so what the layers miss (binding the input, detaching the
outputs) shows as the difference. Times are means over the repeats, so the layer means add up to the
mean run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import cnngraph
from cnngraph.analysis import node_macs
from cnngraph.benchmark import random_input
from cnngraph.ir import Graph
from cnngraph.memory import plan


@dataclass
class LayerTime:
    name: str
    op: str
    kernel: str  # the implementation that ran it (``model.kernels()``: generic, numpy/winograd, ...)
    seconds: float
    share: float  # of the whole run
    macs: int  # for the whole batch
    gflops: float | None  # 2 x MACs / seconds; None for layers without multiply-accumulates


@dataclass
class Profile:
    model: str
    backend: str
    dtype: str
    batch: int
    repeat: int
    run_seconds: float  # the whole run, timed around the same calls
    layers: list[LayerTime]
    ops: dict[str, dict]  # op -> {"count", "seconds", "share"}
    kernels: dict[str, dict]  # "op implementation" -> the same: which kernel choice the time went to
    planned_bytes: int  # the memory plan's peak at this batch
    unplanned_bytes: int  # every activation kept

    @property
    def layer_seconds(self) -> float:
        return sum(layer.seconds for layer in self.layers)

    def as_dict(self) -> dict:
        return {**asdict(self), "layer_seconds": self.layer_seconds}


def profile(graph: Graph, backend: str = "numpy", dtype: str = "float32", batch: int = 1, warmup: int = 1,
            repeat: int = 5, passes: str | list[str] = "default") -> Profile:
    """Compile ``graph`` and time ``repeat`` runs (after ``warmup``) on random input, layer by layer."""
    model = cnngraph.compile(graph, backend=backend, dtype=dtype, passes=passes)
    compiled, device = model.graph, model.backend
    x = model.backend.asarray(random_input(compiled, batch), dtype=model.dtype)
    for _ in range(warmup):
        model.run(x)
    totals: dict[str, float] = defaultdict(float)
    run_total = 0.0
    for _ in range(repeat):
        mark = [0.0]

        def watch(node, value):
            device.synchronize()
            now = time.perf_counter()
            totals[node.name] += now - mark[0]
            mark[0] = now

        start = mark[0] = time.perf_counter()
        model.run(x, watch=watch)
        device.synchronize()
        run_total += time.perf_counter() - start
    run_seconds = run_total / repeat
    layers = []
    chosen = model.kernels()
    for node in compiled.nodes:
        seconds, macs = totals[node.name] / repeat, node_macs(compiled, node) * batch
        layers.append(LayerTime(node.name, node.op, chosen[node.name], seconds, seconds / run_seconds, macs,
                                2 * macs / seconds / 1e9 if macs and seconds else None))
    memory = plan(compiled, batch, dtype)
    return Profile(compiled.name, backend, dtype, batch, repeat, run_seconds, layers,
                   _summed(layers, lambda layer: layer.op),
                   _summed(layers, lambda layer: f"{layer.op} {layer.kernel}"), memory.planned_bytes,
                   memory.unplanned_bytes)


def _summed(layers: list[LayerTime], key) -> dict[str, dict]:
    """Count, seconds and share of the layers grouped by ``key``, slowest group first."""
    groups: dict[str, dict] = {}
    for layer in layers:
        entry = groups.setdefault(key(layer), {"count": 0, "seconds": 0.0, "share": 0.0})
        entry["count"] += 1
        entry["seconds"] += layer.seconds
        entry["share"] += layer.share
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]["seconds"]))
