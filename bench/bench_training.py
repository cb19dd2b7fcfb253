"""Training throughput: images/s of one SGD step (forward, loss, backward, update), cnngraph vs PyTorch CPU.

    python bench/bench_training.py [--model resnet18] [--batch 32] [--input-size 224] [--steps 3]
                                   [--backend numpy|cupy|strict] [--dtype float32|float16]

Both sides train the same graph with the same weights: the PyTorch side is built from the cnngraph
graph node by node (torch.nn.functional calls, the parameters copied in), so the ratio compares
executors, not model definitions; the first step's loss, printed for both, shows it. Each side is
warmed up with one step, then ``--steps`` steps are timed and the median is reported. Without torch, only cnngraph is timed. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform

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


def torch_step(graph, x, y, losses):
    """A PyTorch twin of ``graph`` (the ops ResNets and VGGs use) and its SGD step."""
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
            values[node.name] = node_fn(node, [values[v] for v in node.inputs])
        return values[graph.outputs[0]]

    optimizer = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(forward(tx), ty)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--backend", default="numpy", help="cnngraph's backend (default numpy; PyTorch stays on the CPU)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
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
    try:
        import torch

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


if __name__ == "__main__":
    main()
