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

import numpy as np

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


def _timer(device, totals: dict[str, float], mark: list[float]):
    """An executor ``watch`` hook adding each node's time since the previous mark (after a device
    synchronisation) to ``totals``."""
    def watch(node, value):
        device.synchronize()
        now = time.perf_counter()
        totals[node.name] += now - mark[0]
        mark[0] = now
    return watch


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
        start = mark[0] = time.perf_counter()
        model.run(x, watch=_timer(device, totals, mark))
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


# -- training: forward and backward of every layer in a training step ----------------------------------------
@dataclass
class TrainingLayerTime:
    name: str
    op: str
    kernel: str
    forward_seconds: float  # in training mode, keeping what backward needs
    backward_seconds: float  # 0 for layers backward skips (nothing trainable at or before them)

    @property
    def seconds(self) -> float:
        return self.forward_seconds + self.backward_seconds


@dataclass
class TrainingProfile:
    model: str
    backend: str
    dtype: str
    batch: int
    repeat: int
    step_seconds: float  # forward, backward and the optimizer's update, timed around the same calls
    optimizer_seconds: float  # SGD with momentum over every trainable parameter
    layers: list[TrainingLayerTime]
    ops: dict[str, dict]  # op -> {"count", "forward", "backward", "seconds", "share"}, slowest first

    @property
    def layer_seconds(self) -> float:
        return sum(layer.seconds for layer in self.layers)

    def as_dict(self) -> dict:
        return {**asdict(self), "layer_seconds": self.layer_seconds}


def profile_training(graph: Graph, backend: str = "numpy", dtype: str = "float32", batch: int = 2,
                     warmup: int = 1, repeat: int = 3, passes: str | list[str] = "default") -> TrainingProfile:
    """Compile ``graph`` for training and time ``repeat`` steps (after ``warmup``) layer by layer.

    A step is what ``train_step`` does less the loss: forward in training mode, backward from a fixed
    random gradient of every output (the loss's cost is the model's outputs once, not the model), and
    one SGD-with-momentum update. Layers are timed through the executor's ``watch`` hooks, forward and
    backward separately, as ``profile`` times inference.
    """
    from cnngraph.train import SGD

    model = cnngraph.compile(graph, backend=backend, dtype=dtype, passes=passes, train=True)
    compiled, device = model.graph, model.backend
    x = device.asarray(random_input(compiled, batch), dtype=model.dtype)
    seeds = None
    optimizer = SGD(lr=1e-4, momentum=0.9)
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    mark = [0.0]
    step_total = optimizer_total = 0.0
    for i in range(warmup + repeat):
        timed = i >= warmup
        start = mark[0] = time.perf_counter()
        outputs = model.forward(x, watch=_timer(device, forward, mark) if timed else None)
        if seeds is None:  # fixed across steps, made on the device once: every step does the same work
            rng = np.random.default_rng(0)
            seeds = {k: device.asarray(rng.standard_normal(v.shape), dtype=model.dtype) for k, v in outputs.items()}
        mark[0] = time.perf_counter()
        model.backward(seeds, watch=_timer(device, backward, mark) if timed else None)
        before_update = time.perf_counter()
        optimizer.step(model.params, model.grads)
        device.synchronize()
        if timed:
            now = time.perf_counter()
            step_total += now - start
            optimizer_total += now - before_update
    chosen = model.kernels()
    layers = [TrainingLayerTime(node.name, node.op, chosen[node.name], forward[node.name] / repeat,
                                backward[node.name] / repeat) for node in compiled.nodes]
    step_seconds = step_total / repeat
    return TrainingProfile(compiled.name, backend, dtype, batch, repeat, step_seconds, optimizer_total / repeat,
                           layers, _training_summed(layers, step_seconds))


def _training_summed(layers: list[TrainingLayerTime], step_seconds: float) -> dict[str, dict]:
    """Per op class: layer count, forward and backward seconds, their sum and its share of the step."""
    groups: dict[str, dict] = {}
    for layer in layers:
        entry = groups.setdefault(layer.op, {"count": 0, "forward": 0.0, "backward": 0.0, "seconds": 0.0})
        entry["count"] += 1
        entry["forward"] += layer.forward_seconds
        entry["backward"] += layer.backward_seconds
        entry["seconds"] += layer.seconds
    for entry in groups.values():
        entry["share"] = entry["seconds"] / step_seconds
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]["seconds"]))
