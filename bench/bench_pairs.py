"""Inference throughput against onnxruntime with each side in a fresh process of its own, the two
alternating: steadier ratios on a noisy machine than one process timing both.

    python bench/bench_pairs.py [--models resnet18 resnet50] [--batches 1 8] [--pairs 5] [--repeat 20]
                                [--backend numpy] [--dtype float32]

On this project's 2-core virtual machine the speed drifts by up to 1.5x within minutes, and a process
that has run one side keeps its threads (OpenBLAS's spin for 0.1 s after a GEMM), so ``bench_inference.py``'s
single rows move by 0.1x from run to run. Here every pair starts one process per side, one after the other
(which side goes first alternates from pair to pair, so a drift favours neither); each process builds the
model, warms it up once and times ``--repeat`` runs; the pair's ratio is cnngraph's throughput over
onnxruntime's (onnxruntime's fastest run over cnngraph's fastest). The table gives every pair, their median,
each side's fastest runs, and the load average before and after, which says what else was running. cnngraph
runs with the default passes; onnxruntime runs the file ``cnngraph export`` writes (CPU, ``ORT_ENABLE_ALL``).
A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

from rich.console import Console
from rich.table import Table

SIDES = ("onnxruntime", "cnngraph")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs in each process (after one warm-up)")
    parser.add_argument("--backend", default="numpy", help="cnngraph's backend (default numpy)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one process's share of a pair
    args = parser.parse_args()
    if args.side:
        print(json.dumps(time_side(args.side, args.models[0], args.batches[0], args.repeat, args.backend, args.dtype)))
        return
    from cnngraph import models

    unknown = [name for name in args.models if name not in models.zoo()]
    if unknown:
        sys.exit(f"bench_pairs: unknown model {', '.join(unknown)} (`cnngraph models` lists the zoo)")
    if importlib.util.find_spec("onnxruntime") is None:
        sys.exit("bench_pairs: onnxruntime is not installed (pip install onnxruntime): there is nothing to pair with")
    if args.pairs < 1 or args.repeat < 1:
        sys.exit(f"bench_pairs: --pairs and --repeat must be at least 1, got {args.pairs} and {args.repeat}")

    load_before = os.getloadavg()[0]
    table = Table("model", "batch", "cnngraph / onnxruntime, each pair", "median", "cnngraph fastest ms",
                  "onnxruntime fastest ms", title=f"inference, {args.dtype}, cnngraph on {args.backend}, "
                                                  f"{args.pairs} pairs of processes, fastest of {args.repeat} runs each")
    for name in args.models:
        for batch in args.batches:
            pairs = [pair(index, args, name, batch) for index in range(args.pairs)]
            ratios = [p["onnxruntime"] / p["cnngraph"] for p in pairs]
            table.add_row(name, str(batch), " ".join(f"{r:.2f}" for r in ratios), f"{statistics.median(ratios):.2f}x",
                          spread(p["cnngraph"] for p in pairs), spread(p["onnxruntime"] for p in pairs))
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")


def pair(index: int, args, name: str, batch: int) -> dict[str, float]:
    """One pair: each side's fastest seconds, from a process of its own; odd pairs run cnngraph first."""
    order = SIDES if index % 2 == 0 else SIDES[::-1]
    return {side: one_process(side, args, name, batch)["min_s"] for side in order}


def one_process(side: str, args, name: str, batch: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--side", side, "--models", name, "--batches", str(batch),
               "--repeat", str(args.repeat), "--backend", args.backend, "--dtype", args.dtype]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"bench_pairs: the {side} process for {name} at batch {batch} failed: {last}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def time_side(side: str, name: str, batch: int, repeat: int, backend: str, dtype: str) -> dict:
    """This process's share: ``side`` on ``name`` at ``batch``, warmed up once, then ``repeat`` timed runs."""
    from cnngraph import models
    from cnngraph.benchmark import cnngraph_runner, onnxruntime_runner, random_input, time_call

    graph = models.build(name)
    x = random_input(graph, batch)
    with tempfile.TemporaryDirectory() as folder:
        run = onnxruntime_runner(graph, folder) if side == "onnxruntime" else cnngraph_runner(graph, backend, dtype)
        return time_call(lambda: run(x), warmup=1, repeat=repeat).as_dict()


def spread(seconds) -> str:
    values = [s * 1e3 for s in seconds]
    return f"{min(values):.3g}" if len(values) == 1 else f"{min(values):.3g}-{max(values):.3g}"


if __name__ == "__main__":
    main()
