"""`cnngraph profile MODEL`: where inference time goes. Per layer its time, share of the whole run and,
for layers with multiply-accumulates (convolutions, linear layers), the GFLOP/s achieved, and the kernel that
ran it; per op class, and per op class and kernel, the same summed; then the whole run's time beside the layers' sum, and the memory plan's peak at this batch.
`--json` prints every layer; the table shows the `--top` slowest.
"""

import json

from cnngraph.cli import common
from cnngraph.cli.common import add_timing_args, apply_weights, console, load, positive

HELP = "time each layer and op class of a model's inference"


def add_arguments(p) -> None:
    add_timing_args(p, "timed runs; times are their means (default 5)")
    p.add_argument("--top", type=positive, default=15, help="layers shown, slowest first (default 15)")
    p.add_argument("--json", action="store_true", help="print every layer and op class as JSON")


def run(args) -> None:
    from cnngraph.profile import profile

    graph = apply_weights(load(args), args)
    result = profile(graph, args.backend, args.dtype, args.batch, args.warmup, args.repeat, args.passes)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    layers = common.table("layer", "op", "kernel", "ms", "share", "GFLOP/s", numeric=("ms", "share", "GFLOP/s"))
    console.print(f"{result.model}, batch {args.batch}, {args.dtype} on {args.backend}: the {args.top} slowest of "
                  f"{len(result.layers)} layers, mean of {args.repeat} runs")
    for layer in sorted(result.layers, key=lambda layer: -layer.seconds)[: args.top]:
        layers.add_row(layer.name, layer.op, layer.kernel, f"{layer.seconds * 1e3:.2f}", f"{layer.share:.1%}",
                       "-" if layer.gflops is None else f"{layer.gflops:.1f}")
    console.print(layers)
    for title, groups in (("op class", result.ops), ("op class and kernel", result.kernels)):
        table = common.table(title, "layers", "ms", "share", numeric=("layers", "ms", "share"), title=f"per {title}")
        for key, entry in groups.items():
            table.add_row(key, str(entry["count"]), f"{entry['seconds'] * 1e3:.2f}", f"{entry['share']:.1%}")
        console.print(table)
    mib = 2**20
    console.print(f"whole run {result.run_seconds * 1e3:.1f} ms, layers sum to {result.layer_seconds * 1e3:.1f} ms; "
                  f"memory plan peak at batch {args.batch}: {result.planned_bytes / mib:.2f} MiB "
                  f"({result.unplanned_bytes / mib:.2f} MiB with every activation kept)")
