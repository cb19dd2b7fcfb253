"""Data parallelism, 1 vs 2 workers: images/s, the share of step time spent in communication, scaling efficiency.

    python bench/bench_dist.py [--steps 30] [--batch 64] [--threads T]

LeNet-5 on the shipped digits (resized to 32x32) and a small ResNet (ResNet-18 at a quarter of the
width, 0.7 M parameters) on random 32x32 RGB images, each at the same global batch for 1 and 2
workers (strong scaling: each of 2 workers computes half of it). One worker is one plain process;
2 run under mpiexec (the dist extra). Each worker gets cores // workers BLAS threads, or ``--threads``
(``--threads 1`` compares 1 and 2 single-threaded processes: OpenBLAS threads that share busy cores
spin, which flatters the 2-worker run).

"communication" is the time a rank spends inside the communicator (starting sums, waiting for
them, broadcasting BatchNorm statistics), measured on rank 0: it includes waiting for the other
rank to arrive, so it also holds load imbalance. On a machine shared with other jobs, the
scheduler gives 2 processes about twice the CPU of 1, so wall-clock scaling there says little; the
images per CPU-second (all ranks' process time, BLAS threads included) and its ratio ("CPU
efficiency": 100% when two workers waste nothing) hold up better. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

MODELS = {"lenet5": {}, "resnet18": {"width": 0.25, "input_size": 32, "num_classes": 10}}


class Timed:
    """A communicator whose calls are timed (seconds spent in them, waits included)."""

    def __init__(self, comm):
        self.comm, self.seconds = comm, 0.0
        self.rank, self.size, self.host = comm.rank, comm.size, self

    def _timed(self, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def start_sum(self, buffer, what):
        pending = self._timed(self.comm.start_sum, buffer, what)
        wait = pending.wait
        pending.wait = lambda: self._timed(wait)
        return pending

    def sum(self, buffer, what):
        return self._timed(self.comm.sum, buffer, what)

    def broadcast(self, buffer, what, root=0):
        return self._timed(self.comm.broadcast, buffer, what, root)


def data(model: str, n: int):
    from cnngraph.train import load_dataset

    if model == "lenet5":
        train = load_dataset("digits", (1, 32, 32)).train
        return train.x.astype(np.float32), train.y
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n)


def worker(args) -> None:
    """One rank (or the one process): time ``steps`` training steps after two warm-up steps."""
    import cnngraph
    from cnngraph import models
    from cnngraph.backends.threads import blas
    from cnngraph.train import SGD, CrossEntropy
    from cnngraph.train.dist import world_size
    from cnngraph.train.dist.parallel import DataParallel, Single
    from cnngraph.train.dist.sharding import shard

    size = world_size()
    blas.configure(args.threads or max(1, (os.cpu_count() or 1) // size))  # every GEMM, not only large ones
    if size > 1:
        from cnngraph.train.dist import connect

        comm = Timed(connect())
        parallel = DataParallel(comm)
    else:
        comm, parallel = None, Single()
    model = cnngraph.compile(models.build(args.model, **MODELS[args.model]), train=True)
    parallel.attach(model, sync_bn=False)
    x, y = data(args.model, args.batch * 4)
    loss, optimizer = parallel.loss(CrossEntropy()), SGD(lr=0.01, momentum=0.9)
    buffers = [k for k in model.params if k not in set(model.trainable)]
    part = shard(args.batch, parallel.rank, size)
    for step in range(args.steps + 2):
        if step == 2:  # after warm-up (plans, first allocations)
            start, cpu = time.perf_counter(), time.process_time()
            if comm is not None:
                comm.seconds = 0.0
        begin = (step * args.batch) % (len(x) - args.batch)
        batch = slice(begin, begin + args.batch)
        parallel.share_buffers(model.params, buffers)
        model.train_step(x[batch][part], y[batch][part], loss, optimizer)
    seconds = time.perf_counter() - start
    comm_share = 0.0 if comm is None else comm.seconds / seconds
    cpu = parallel.sum(time.process_time() - cpu)[0]
    if parallel.rank == 0:
        print(json.dumps({"images_per_s": args.steps * args.batch / seconds, "seconds": seconds,
                          "images_per_cpu_s": args.steps * args.batch / cpu, "comm": comm_share}))
    if comm is not None:
        comm.comm.close()


def run(model: str, workers: int, args) -> dict:
    from cnngraph.train.dist import launch

    program = [sys.executable, __file__, "--worker", "--model", model, "--steps", str(args.steps),
               "--batch", str(args.batch), "--threads", str(args.threads or 0)]
    command = program if workers == 1 else launch.command(launch.find_mpiexec(), workers, program)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=64, help="global batch (each of N workers takes 1/N)")
    p.add_argument("--threads", type=int, help="BLAS threads per worker (default: cores // workers)")
    p.add_argument("--model", choices=list(MODELS))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; global batch {args.batch}, "
          f"{args.steps} timed steps; BLAS threads per worker: {args.threads or 'cores // workers'}")
    print("| model | workers | images/s | communication share | scaling efficiency | images per CPU-s | CPU efficiency |")
    print("|---|---|---|---|---|---|---|")
    for model in ([args.model] if args.model else list(MODELS)):
        one = run(model, 1, args)
        two = run(model, 2, args)
        print(f"| {model} | 1 | {one['images_per_s']:.0f} | - | - | {one['images_per_cpu_s']:.0f} | - |")
        print(f"| {model} | 2 | {two['images_per_s']:.0f} | {two['comm']:.0%} | "
              f"{two['images_per_s'] / (2 * one['images_per_s']):.0%} | {two['images_per_cpu_s']:.0f} | "
              f"{two['images_per_cpu_s'] / one['images_per_cpu_s']:.0%} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
