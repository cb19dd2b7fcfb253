"""`cnngraph profile MODEL`: where inference time goes. Per layer its time, share of the whole run and,
for layers with multiply-accumulates (convolutions, linear layers), the GFLOP/s achieved, and the kernel that
ran it; per op class, and per op class and kernel, the same summed; then the whole run's time beside the layers' sum, and the memory plan's peak at this batch.
`--json` prints every layer; the table shows the `--top` slowest. `--train` times a training step instead:
each layer's forward and backward, per op class, and the optimizer's update.
"""

import json

from cnngraph.cli import common
from cnngraph.cli.common import add_timing_args, apply_weights, console, load, positive

HELP = "time each layer and op class of a model's inference"


def add_arguments(p) -> None:
    add_timing_args(p, "timed runs; times are their means (default 5)")
    p.add_argument("--top", type=positive, default=15, help="layers shown, slowest first (default 15)")
    p.add_argument("--json", action="store_true", help="print every layer and op class as JSON")
    p.add_argument("--train", action="store_true",
                   help="time a training step: each layer's forward and backward, and the optimizer")


def run(args) -> None:
    from cnngraph.profile import profile

    graph = apply_weights(load(args), args)
    if args.train:
        return run_training(graph, args)
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


def run_training(graph, args) -> None:
    from cnngraph.profile import profile_training

    result = profile_training(graph, args.backend, args.dtype, args.batch, args.warmup, args.repeat, args.passes)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    console.print(f"{result.model} training step, batch {args.batch}, {args.dtype} on {args.backend}: "
                  f"mean of {args.repeat} steps")
    layers = common.table("layer", "op", "kernel", "forward ms", "backward ms", "share",
                          numeric=("forward ms", "backward ms", "share"))
    for layer in sorted(result.layers, key=lambda layer: -layer.seconds)[: args.top]:
        layers.add_row(layer.name, layer.op, layer.kernel, f"{layer.forward_seconds * 1e3:.2f}",
                       f"{layer.backward_seconds * 1e3:.2f}", f"{layer.seconds / result.step_seconds:.1%}")
    console.print(layers)
    ops = common.table("op class", "layers", "forward ms", "backward ms", "ms", "share",
                       numeric=("layers", "forward ms", "backward ms", "ms", "share"), title="per op class")
    for op, entry in result.ops.items():
        ops.add_row(op, str(entry["count"]), f"{entry['forward'] * 1e3:.2f}", f"{entry['backward'] * 1e3:.2f}",
                    f"{entry['seconds'] * 1e3:.2f}", f"{entry['share']:.1%}")
    ops.add_row("optimizer (SGD, momentum)", "-", "-", "-", f"{result.optimizer_seconds * 1e3:.2f}",
                f"{result.optimizer_seconds / result.step_seconds:.1%}")
    console.print(ops)
    console.print(f"whole step {result.step_seconds * 1e3:.1f} ms; layers sum to {result.layer_seconds * 1e3:.1f} ms, "
                  f"the optimizer {result.optimizer_seconds * 1e3:.1f} ms")
