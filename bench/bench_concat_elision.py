"""Concat elision before/after: the default pipeline with and without ``concat_elision``.

    python bench/bench_concat_elision.py [--model densenet121] [--batch 8] [--repeat 5] [--rounds 2]

NumPy executor, float32, 224x224. Rounds alternate the two graphs so machine noise hits both; each
line gives the median and minimum of ``--repeat`` timed runs after one warm-up, and the peak of
traced allocations (tracemalloc, which sees NumPy's buffers) over one more run. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

import cnngraph
from cnngraph import models
from cnngraph.passes import DEFAULT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    graph = models.build(args.model)
    x = np.random.default_rng(0).standard_normal((args.batch, *graph.inputs["image"].concrete(1)[1:]))
    x = x.astype(np.float32)
    pipelines = {"without": [p for p in DEFAULT if p != "concat_elision"], "with": DEFAULT}
    runners = {label: cnngraph.compile(cnngraph.optimize(graph, passes)[0], passes="none") for label, passes in pipelines.items()}
    outputs = {}
    for _ in range(args.rounds):
        for label, run in runners.items():
            outputs[label] = run(x)
            samples = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                run(x)
                samples.append(time.perf_counter() - t0)
            tracemalloc.start()
            run(x)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{args.model} batch {args.batch} {label:>7} concat_elision: median {statistics.median(samples):.3f}s"
                  f"  min {min(samples):.3f}s  peak {peak / 2**20:.0f} MiB")
    print(f"max abs difference: {float(np.abs(outputs['with'] - outputs['without']).max()):.3g}")


if __name__ == "__main__":
    main()
