"""BLAS threads beside another job: every core for large GEMMs (the choice before load awareness) against
only the cores other processes leave free (``backends/threads.py``), alternating in one process while a
busy loop runs. A benchmark, not a test.

    python bench/threads_under_load.py [MODEL] [BATCH] [--repeat 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import cnngraph
from cnngraph import models
from cnngraph.backends.threads import blas


class EveryCoreFree:
    @staticmethod
    def cores() -> float:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="resnet18")
    parser.add_argument("batch", nargs="?", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    model = cnngraph.compile(models.build(args.model), backend="numpy")
    shape = next(iter(model.graph.inputs.values())).shape[1:]
    x = np.random.default_rng(0).standard_normal((args.batch, *shape)).astype(np.float32)
    choices = {"every core": EveryCoreFree(), "free cores": blas.others}
    times = {name: [] for name in choices}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        model(x)
        time.sleep(1)  # a load sample that sees the busy loop
        for _ in range(args.repeat):
            for name, others in choices.items():
                blas.others = others
                model(x)  # settles the choice
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    finally:
        busy.kill()
    for name, samples in times.items():
        print(f"{args.model} batch {args.batch}, large GEMMs on {name}: median {statistics.median(samples) * 1e3:.0f} ms "
              f"({', '.join(f'{t * 1e3:.0f}' for t in samples)})")
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
