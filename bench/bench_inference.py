"""Inference throughput of the NumPy executor: images/s and achieved GFLOP/s (2 x MACs / time).

    python bench/bench_inference.py [--models resnet18 resnet50] [--batches 1 8] [--repeat 5]

A benchmark, not a test: it prints numbers and asserts nothing. Each case is warmed up once,
then timed ``--repeat`` times; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import cnngraph
from cnngraph import models
from cnngraph.analysis import total_macs


def time_call(fn, repeat: int) -> float:
    fn()  # warm-up: first-touch allocations, BLAS thread start
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    console = Console()
    console.print(f"cnngraph {cnngraph.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
                  f"{os.cpu_count()} CPUs")
    table = Table("model", "batch", "ms / batch", "images/s", "GFLOP/s", title="NumPy executor, float32, 224x224")
    for name in args.models:
        graph = models.build(name)
        model = cnngraph.compile(graph)
        macs = total_macs(graph)
        for batch in args.batches:
            x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
            sec = time_call(lambda: model(x), args.repeat)
            table.add_row(name, str(batch), f"{1e3 * sec:.1f}", f"{batch / sec:.1f}",
                          f"{2 * macs * batch / sec / 1e9:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
