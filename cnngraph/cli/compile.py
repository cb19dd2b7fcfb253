"""`cnngraph compile MODEL -o model.cng`: run the pass pipeline and write the optimised graph.

`--report` prints what every pass did and skipped (and why), which backend implementation runs each
op (and why a backend's own declined), node and parameter counts, and the peak activation memory
with and without planning; `--print-ir` prints the graph after passes. `--check` proves the passes
and then the backend at `--dtype`, node by node, against the NumPy float64 reference.
"""

from collections import Counter

from cnngraph.cli.common import (add_backend_arg, add_dtype_arg, add_model_args, add_threads_arg, add_weights_arg,
                                 apply_weights, console, load, positive)

HELP = "optimise a model with graph passes and write it as .cng"


def add_arguments(p) -> None:
    add_model_args(p)
    add_weights_arg(p)
    p.add_argument("-o", "--output", help="write the optimised graph here (.cng)")
    p.add_argument("--passes", default="default",
                   help='"default", "none", or a comma-separated list of pass names')
    add_backend_arg(p, "lower to")
    add_dtype_arg(p)
    add_threads_arg(p)
    p.add_argument("--check", action="store_true",
                   help="run the graph before and after each pass, then on the backend node by node; fail naming "
                        "the first pass or layer that changes outputs")
    p.add_argument("--report", action="store_true", help="print what each pass did, skipped and why")
    p.add_argument("--print-ir", action="store_true", help="print the graph after passes in the IR's text form")
    p.add_argument("--batch", type=positive, default=8, help="batch size for the memory report (default 8)")


def run(args) -> None:
    import cnngraph
    from cnngraph import io
    from cnngraph.memory import plan

    graph = apply_weights(load(args), args)
    model = cnngraph.compile(graph, args.backend, args.dtype, passes=args.passes, check=args.check)
    optimized = model.graph
    if args.report:
        for report in model.report:
            console.print(str(report), markup=False, highlight=False)
        _print_kernels(model)
        mib = 2**20
        for label, g in (("input graph", graph), ("optimised graph", optimized)):
            p = plan(g, args.batch, args.dtype)
            console.print(f"activation memory at batch {args.batch}, {label}: {p.unplanned_bytes / mib:.1f} MiB "
                          f"with every value kept, {p.planned_bytes / mib:.1f} MiB planned "
                          f"({len(p.buffer_bytes)} buffers, {len(p.in_place)} in place)")
    if args.check:
        node, err = max(model.check_errors, key=lambda e: e[1], default=("-", 0.0))
        console.print(f"check on {args.backend} ({args.dtype}): every pass and every layer within tolerance of the "
                      f"NumPy float64 reference; largest relative error {err:.2g} at '{node}'")
    if args.print_ir:
        console.print(str(optimized), markup=False, highlight=False)
    console.print(f"{graph.name}: {len(graph.nodes)} nodes -> {len(optimized.nodes)} nodes, "
                  f"{len(graph.params)} -> {len(optimized.params)} parameter tensors")
    if args.output:
        io.save(optimized, args.output)
        console.print(f"wrote {args.output}")


def _print_kernels(model) -> None:
    """How many nodes each implementation runs, and every backend kernel that declined a node, with why."""
    counts = Counter(model.kernels().values())
    console.print(f"kernels on {model.backend.name}: " + ", ".join(f"{n} nodes {impl}" for impl, n in counts.items()),
                  markup=False, highlight=False)
    for node, impl, why in model.fallbacks():
        console.print(f"  {node}: the {impl} kernel declined ({why})", markup=False, highlight=False)
