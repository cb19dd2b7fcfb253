"""`cnngraph bench MODEL`: inference time on a backend, and in the same run onnxruntime on the exported file
and PyTorch eager (when torch is installed and this checkout has a PyTorch twin of the model: the ResNets),
on one input. Prints the median and spread per side, cnngraph's throughput as a ratio of each other's, its
achieved GFLOP/s and how far the outputs are apart; `--json` prints the same as JSON.
"""

import json

from cnngraph.cli import common
from cnngraph.cli.common import add_timing_args, apply_weights, console, load

HELP = "time inference against onnxruntime (and PyTorch) in one run"


def add_arguments(p) -> None:
    add_timing_args(p, "timed runs per side; the median is reported (default 5)")
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")


def run(args) -> None:
    from cnngraph.benchmark import bench

    graph = apply_weights(load(args), args)
    result = bench(graph, args.backend, args.dtype, args.batch, args.warmup, args.repeat, args.passes)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    numbers = ("median ms", "spread", "images/s", "cnngraph/side")
    table = common.table("side", *numbers, numeric=numbers)
    for side, t in result["sides"].items():
        ratio = result["ratios"].get(f"cnngraph/{side}")
        table.add_row(side, f"{t['median_s'] * 1e3:.1f}", f"{t['spread']:.0%}", f"{t['images_per_s']:.1f}",
                      "-" if ratio is None else f"{ratio:.2f}x")
    console.print(f"{result['model']}, batch {args.batch}, {args.dtype}, cnngraph on {args.backend}: median of "
                  f"{args.repeat} runs after {args.warmup} warm-up")
    console.print(table)
    console.print(f"cnngraph {result['gflops']:.1f} GFLOP/s; outputs within {result['max_rel_diff']:.1e} relative; "
                  + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
                  + "".join(f"; {side} not run: {_why(side, result)}" for side in result["not_run"]))


def _why(side: str, result: dict) -> str:
    if result["versions"].get("torch" if side == "pytorch" else side) == "not installed":
        return "not installed"
    return "this checkout has no PyTorch twin of the model (tests/torch_resnet.py: the ResNets)"
