"""Training throughput: images/s of one SGD step (forward, loss, backward, update), cnngraph vs PyTorch CPU.

    python bench/bench_training.py [--model resnet18] [--batch 32] [--input-size 224] [--steps 3]
                                   [--backend numpy|cupy|strict] [--dtype float32|float16] [--breakdown]
                                   [--threads N]

Both sides train the same graph with the same weights: the PyTorch side is built from the cnngraph
graph node by node (torch.nn.functional calls, the parameters copied in), so the ratio compares
executors, not model definitions; the first step's loss, printed for both, shows it. Each side is
warmed up with one step, then ``--steps`` steps are timed and the median is reported. Without torch, only cnngraph is timed. A benchmark, not a test.

``--threads N`` runs both sides on N threads (cnngraph's BLAS, PyTorch's intra-op pool): on a machine
other processes load, one thread each compares the executors without thread contention deciding it.
``--breakdown`` then says where each side's step goes, per op class, forward and backward: cnngraph's
from ``cnngraph.profile.profile_training``, PyTorch's from ``torch.profiler`` (each twin layer's forward
in a ``record_function`` scope named after its op class, each autograd function's backward mapped to
the op class that made it), both over ``--steps`` steps after one warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
from collections import defaultdict

import numpy as np
from rich.console import Console
from rich.table import Table

import cnngraph
from cnngraph import models
from cnngraph.benchmark import time_call  # the same warm-up and median timing as the inference bench
from cnngraph.train import SGD, CrossEntropy


def cnngraph_step(graph, x, y, losses, backend="numpy", dtype="float32"):
    """One train_step on inputs already on the backend's device (the loss value syncs the device)."""
    model = cnngraph.compile(graph, backend=backend, dtype=dtype, train=True)
    loss, optimizer = CrossEntropy(), SGD(lr=0.01, momentum=0.9)
    x, y = model.backend.asarray(x, dtype=model.dtype), model.backend.asarray(y)
    return lambda: losses.append(model.train_step(x, y, loss, optimizer))


def torch_step(graph, x, y, losses, scope=lambda name: contextlib.nullcontext()):
    """A PyTorch twin of ``graph`` (the ops ResNets and VGGs use) and its SGD step; ``scope(op)`` wraps
    each layer's forward and ``scope("optimizer")`` the update (``torch.profiler.record_function``)."""
    import torch
    import torch.nn.functional as F

    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in graph.params.items()
              if not k.endswith(("running_mean", "running_var"))}
    buffers = {k: torch.from_numpy(v.copy()) for k, v in graph.params.items() if k not in params}
    table = {**params, **buffers}

    def node_fn(node, args):
        p = {role: table[key] for role, key in node.params.items()}
        a = node.attrs
        if node.op == "Conv2d":
            top, left, bottom, right = a["padding"]
            if (top, left) == (bottom, right):  # as torch.nn.Conv2d(padding=...) runs it: no separate pad
                return F.conv2d(args[0], p["weight"], p.get("bias"), a["stride"], (top, left), a["dilation"],
                                a["groups"])
            return F.conv2d(F.pad(args[0], (left, right, top, bottom)), p["weight"], p.get("bias"), a["stride"],
                            0, a["dilation"], a["groups"])
        if node.op == "BatchNorm2d":
            return F.batch_norm(args[0], p["running_mean"], p["running_var"], p["weight"], p["bias"], True,
                                a["momentum"], a["eps"])
        if node.op == "MaxPool2d":
            top, left, _, _ = a["padding"]
            return F.max_pool2d(args[0], a["kernel_size"], a["stride"], (top, left), a["dilation"], a["ceil_mode"])
        simple = {"ReLU": F.relu, "Add": lambda *xs: sum(xs[1:], xs[0]), "Flatten": lambda t: t.flatten(1),
                  "GlobalAvgPool": lambda t: t.mean(dim=(2, 3), keepdim=True),
                  "Linear": lambda t: F.linear(t, p["weight"], p.get("bias"))}
        return simple[node.op](*args)

    def forward(inp):
        values = {next(iter(graph.inputs)): inp}
        for node in graph.nodes:
            with scope(node.op):
                values[node.name] = node_fn(node, [values[v] for v in node.inputs])
        return values[graph.outputs[0]]

    optimizer = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(forward(tx), ty)
        loss.backward()
        with scope("optimizer"):
            optimizer.step()
        losses.append(loss.item())

    return step


# Autograd functions of the twin's layers, by the op class whose forward made them
TORCH_BACKWARD = {"ConvolutionBackward0": "Conv2d", "ConstantPadNdBackward0": "Conv2d",
                  "NativeBatchNormBackward0": "BatchNorm2d", "ReluBackward0": "ReLU",
                  "MaxPool2DWithIndicesBackward0": "MaxPool2d", "AddBackward0": "Add", "MeanBackward1": "GlobalAvgPool",
                  "ViewBackward0": "Flatten", "AddmmBackward0": "Linear", "TBackward0": "Linear"}
BACKWARD_EVENT = "autograd::engine::evaluate_function: "


def torch_breakdown(graph, x, y, steps):
    """Seconds per step by op class, {"forward", "backward"}, and "optimizer", from torch.profiler."""
    import torch
    from torch.profiler import ProfilerActivity, record_function

    step = torch_step(graph, x, y, [], scope=lambda name: record_function(f"cnngraph.{name}"))
    step()  # warm-up, as on the cnngraph side
    with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    classes = defaultdict(lambda: {"forward": 0.0, "backward": 0.0})
    for event in prof.key_averages():
        seconds = event.cpu_time_total / 1e6 / steps
        if event.key.startswith("cnngraph."):
            direction, op = "forward", event.key.removeprefix("cnngraph.")
        elif event.key.startswith(BACKWARD_EVENT):
            name = event.key.removeprefix(BACKWARD_EVENT)
            direction, op = "backward", TORCH_BACKWARD.get(name, name)
        else:
            continue
        classes[op][direction] += seconds
    return classes


def print_breakdown(console, graph, x, y, args):
    """Per op class, each side's forward and backward milliseconds per step, and their ratio."""
    from cnngraph.profile import profile_training

    ours = profile_training(graph, args.backend, args.dtype, args.batch, repeat=args.steps)
    theirs = torch_breakdown(graph, x, y, args.steps)
    table = Table("op class", "cnngraph fwd ms", "bwd ms", "PyTorch fwd ms", "bwd ms", "cnngraph / PyTorch",
                  title=f"where a training step goes, per op class (mean of {args.steps} steps)")
    rows = {op: (e["forward"], e["backward"]) for op, e in ours.ops.items()}
    rows["optimizer"] = (ours.optimizer_seconds, 0.0)
    for op, (forward, backward) in rows.items():
        other = theirs.get(op, {"forward": 0.0, "backward": 0.0})
        peer = other["forward"] + other["backward"]
        table.add_row(op, f"{forward * 1e3:.1f}", f"{backward * 1e3:.1f}", f"{other['forward'] * 1e3:.1f}",
                      f"{other['backward'] * 1e3:.1f}", f"{(forward + backward) / peer:.2f}x" if peer else "-")
    for op in sorted(set(theirs) - set(rows)):  # PyTorch work no cnngraph layer matches (the loss, accumulation)
        table.add_row(op, "-", "-", f"{theirs[op]['forward'] * 1e3:.1f}", f"{theirs[op]['backward'] * 1e3:.1f}", "-")
    console.print(table)
    console.print(f"cnngraph step {ours.step_seconds * 1e3:.0f} ms (its layers {ours.layer_seconds * 1e3:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--backend", default="numpy", help="cnngraph's backend (default numpy; PyTorch stays on the CPU)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both sides (default: cnngraph's auto, PyTorch's default)")
    parser.add_argument("--breakdown", action="store_true",
                        help="then time each op class's forward and backward on both sides (needs torch)")
    args = parser.parse_args()

    console = Console()
    console.print(f"cnngraph {cnngraph.__version__}, numpy {np.__version__}, "
                  f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    graph = models.build(args.model, input_size=args.input_size)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.input_size, args.input_size)).astype(np.float32)
    y = rng.integers(0, 1000, args.batch)
    sides = {f"cnngraph ({args.backend}, {args.dtype})":
             lambda *a: cnngraph_step(*a, backend=args.backend, dtype=args.dtype)}
    if args.threads is not None:
        from cnngraph.backends.threads import blas

        blas.configure(args.threads)
    try:
        import torch

        if args.threads is not None:
            torch.set_num_threads(args.threads)
        sides[f"PyTorch {torch.__version__} CPU ({torch.get_num_threads()} threads)"] = torch_step
    except ImportError:
        console.print("torch is not installed: timing cnngraph only")
    title = f"{args.model} training step, batch {args.batch}, {args.input_size}x{args.input_size}, SGD"
    table = Table("executor", "s / step", "images/s", "first loss", title=title)
    rates = []
    for name, make in sides.items():
        losses = []  # the first (warm-up) step's loss shows both sides train the same model
        seconds = time_call(make(graph, x, y, losses), 1, args.steps).median
        rates.append(args.batch / seconds)
        table.add_row(name, f"{seconds:.2f}", f"{rates[-1]:.1f}", f"{losses[0]:.5f}")
    console.print(table)
    if len(rates) == 2:
        console.print(f"cnngraph / PyTorch training throughput: {rates[0] / rates[1]:.2f}x")
        if args.breakdown:
            print_breakdown(console, graph, x, y, args)


if __name__ == "__main__":
    main()
