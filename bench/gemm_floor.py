"""The floor under a model's convolutions on this machine: every convolution of the graph as the GEMM
its im2col form is (per group, weights (O/g, C/g*kh*kw) times columns (C/g*kh*kw, N*positions)), timed
bare with warm operands on NumPy's BLAS threads and summed, beside whole runs of cnngraph and of onnxruntime
on the exported file, each side the fastest of ``--repeat`` runs.

    python bench/gemm_floor.py [--models resnet50] [--batch 1] [--repeat 20] [--layers]

Where the GEMMs alone take most of onnxruntime's whole run, no scheduling of cnngraph's can close the rest:
the copies (im2col, transforms) and the passes around the GEMMs (bias, residual, activation) come on top of
them here, and onnxruntime's kernels do without both. Winograd layers do fewer multiplications than the GEMM
timed for them, so a model with many can run under its floor. ``--layers`` prints each convolution's GEMM.
A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
from rich.console import Console
from rich.table import Table

from cnngraph import models
from cnngraph.benchmark import cnngraph_runner, compare, onnxruntime_runner, random_input, time_call

CONVOLUTIONS = ("Conv2d", "FusedConv2d")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--layers", action="store_true", help="print each convolution's GEMM and its time")
    args = parser.parse_args()
    unknown = [name for name in args.models if name not in models.zoo()]
    if unknown or args.batch < 1 or args.repeat < 1:
        sys.exit(f"gemm_floor: unknown model {', '.join(unknown)} (`cnngraph models` lists the zoo)" if unknown else
                 f"gemm_floor: --batch and --repeat must be at least 1, got {args.batch} and {args.repeat}")
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table("model", "batch", "convolutions", "their GEMMs alone ms", "cnngraph run ms", "onnxruntime run ms",
                  "GEMMs / onnxruntime", "cnngraph / onnxruntime time",
                  title=f"the GEMM floor, float32, fastest of {args.repeat} each")
    for name in args.models:
        graph = models.build(name)
        gemms = [(node.name, *shape, fastest(shape, args.repeat)) for node, shape in conv_gemms(graph, args.batch)]
        if args.layers:
            for layer, groups, m, k, n, seconds in gemms:
                console.print(f"{layer}: {groups} x ({m} x {k}) @ ({k} x {n}), {seconds * 1e3:.3f} ms, "
                              f"{2 * groups * m * k * n / seconds / 1e9:.0f} GFLOP/s")
        with tempfile.TemporaryDirectory() as folder:
            runners = {"cnngraph": cnngraph_runner(graph, "numpy", "float32"),
                       "onnxruntime": onnxruntime_runner(graph, folder)}
            timings, _ = compare(runners, random_input(graph, args.batch), 1, args.repeat)
        floor = sum(g[-1] for g in gemms)
        ours = min(timings["cnngraph"].samples)
        theirs = min(timings["onnxruntime"].samples) if "onnxruntime" in timings else None
        table.add_row(name, str(args.batch), str(len(gemms)), f"{floor * 1e3:.3g}", f"{ours * 1e3:.3g}",
                      "-" if theirs is None else f"{theirs * 1e3:.3g}",
                      "-" if theirs is None else f"{floor / theirs:.2f}", "-" if theirs is None else f"{ours / theirs:.2f}")
    console.print(table)


def conv_gemms(graph, batch: int):
    """(node, (groups, M, K, N)) for every 2-D convolution of ``graph`` at ``batch``: its im2col GEMM's shape (the
    same before and after the passes, which fold and fuse around convolutions but keep their shapes)."""
    for node in graph.nodes:
        if node.op in CONVOLUTIONS and len(node.attrs["kernel_size"]) == 2:
            channels = graph.type_of(node.inputs[0]).shape[1]
            out, *size = node.type.shape[1:]
            groups = node.attrs["groups"]
            kh, kw = node.attrs["kernel_size"]
            yield node, (groups, out // groups, channels // groups * kh * kw, batch * size[0] * size[1])


def fastest(shape, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` bare GEMMs of ``shape`` (after one warm-up), into a kept output."""
    groups, m, k, n = shape
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((groups, m, k), dtype=np.float32)
    columns = rng.standard_normal((groups, k, n), dtype=np.float32)
    out = np.empty((groups, m, n), np.float32)
    return min(time_call(lambda: np.matmul(weights, columns, out=out), warmup=1, repeat=repeat).samples)


if __name__ == "__main__":
    main()
