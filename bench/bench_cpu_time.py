"""Inference in CPU time on one thread: cnngraph's NumPy executor against onnxruntime on the exported
file, and optionally against itself with one kernel variant switched off, alternating in one process.

    python bench/bench_cpu_time.py [--models resnet18 resnet50] [--batches 1 8] [--repeat 5]
                                   [--off VARIANT] [--layers]

On a machine shared with other jobs wall-clock rates swing several-fold (``bench_inference.py`` says
so in its spread); this thread's CPU time (``time.thread_time``) with every engine on one thread
(BLAS for cnngraph, ``intra_op_num_threads=1`` for onnxruntime, which then runs in the calling
thread) much less. ``--off tiled`` (or ``winograd``, which takes ``winograd-train`` with it) also
times the model with that NumPy kernel variant declining every node, as the next implementation
then runs it; ``--layers`` prints the layers the variant runs, on and off. Medians over the repeats.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from statistics import median

import numpy as np

import cnngraph
from cnngraph import models
from cnngraph.backends.kernels import _IMPLS
from cnngraph.backends.onnx_export import export
from cnngraph.backends.threads import blas
from cnngraph.benchmark import random_input


def without(graph, variant: str):
    """``graph`` compiled with the numpy backend's ``variant`` declining every node (restored after)."""
    keys = [k for k in _IMPLS if k[0] == "numpy" and k[2].split("-")[0] == variant]
    if not keys:
        sys.exit(f"no numpy kernel variant '{variant}'")
    saved = {k: _IMPLS[k].supports for k in keys}
    for k in keys:
        _IMPLS[k].supports = lambda node, dtype: "switched off for the comparison"
    try:
        return cnngraph.compile(graph)
    finally:
        for k, supports in saved.items():
            _IMPLS[k].supports = supports


def cnngraph_side(model, x):
    """A run of ``model`` that records each layer's CPU time (from the previous node's hand-off) into ``layers``."""
    layers: dict[str, list[float]] = {}

    def run():
        mark = [time.thread_time()]

        def watch(node, value):
            now = time.thread_time()
            layers.setdefault(node.name, []).append(now - mark[0])
            mark[0] = now

        model.run(x, watch=watch)

    return run, layers


def onnxruntime_side(graph, folder: str, x):
    import onnxruntime as ort

    path = os.path.join(folder, f"{graph.name}.onnx")
    export(graph, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {next(iter(graph.inputs)): x}
    return lambda: session.run(None, feeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--off", metavar="VARIANT", help="also time the model with this numpy kernel variant off")
    parser.add_argument("--layers", action="store_true", help="with --off: the variant's layers, on and off")
    args = parser.parse_args()
    blas.configure(1)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            graph = models.build(name)
            model = cnngraph.compile(graph)
            chosen = [n for n, impl in model.kernels().items() if impl == f"numpy/{args.off}"]
            for batch in args.batches:
                x = np.asarray(random_input(graph, batch), dtype=np.float32)
                sides = {"cnngraph": cnngraph_side(model, x), "onnxruntime": (onnxruntime_side(graph, folder, x), None)}
                if args.off:
                    sides["off"] = cnngraph_side(without(graph, args.off), x)
                cpu = {side: [] for side in sides}
                for run, _ in sides.values():
                    run()  # warm-up: plans, filter transforms, onnxruntime's first-run allocations
                for layers in (sides["cnngraph"][1], sides.get("off", (None, {}))[1]):
                    layers.clear()
                for _ in range(args.repeat):
                    for side, (run, _) in sides.items():
                        start = time.thread_time()
                        run()
                        cpu[side].append(time.thread_time() - start)
                ms = {side: median(t) * 1e3 for side, t in cpu.items()}
                line = (f"{name} batch {batch}: cnngraph {ms['cnngraph']:.1f} ms CPU, onnxruntime {ms['onnxruntime']:.1f}"
                        f" ms: cnngraph / onnxruntime {ms['onnxruntime'] / ms['cnngraph']:.2f}x in images/s")
                if args.off:
                    line += f"; with {args.off} off {ms['off']:.1f} ms ({ms['cnngraph'] / ms['off']:.3f}x the time)"
                print(line, flush=True)
                if args.off and args.layers:
                    on_layers, off_layers = sides["cnngraph"][1], sides["off"][1]
                    for n in chosen:
                        print(f"  {n:28s} {median(on_layers[n]) * 1e3:8.2f} {median(off_layers[n]) * 1e3:8.2f}")
    blas.restore()


if __name__ == "__main__":
    main()
