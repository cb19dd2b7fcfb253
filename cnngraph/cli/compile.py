"""`cnngraph compile MODEL -o model.cng`: run the pass pipeline and write the optimised graph.

`--report` prints what every pass did and skipped (and why), node and parameter counts, and the
peak activation memory with and without planning; `--print-ir` prints the graph after passes.
"""

from cnngraph.cli.common import add_model_args, console, load, positive

HELP = "optimise a model with graph passes and write it as .cng"


def add_arguments(p) -> None:
    add_model_args(p)
    p.add_argument("-o", "--output", help="write the optimised graph here (.cng)")
    p.add_argument("--passes", default="default",
                   help='"default", "none", or a comma-separated list of pass names')
    p.add_argument("--check", action="store_true",
                   help="run the graph before and after each pass; fail naming the first pass that changes outputs")
    p.add_argument("--report", action="store_true", help="print what each pass did, skipped and why")
    p.add_argument("--print-ir", action="store_true", help="print the graph after passes in the IR's text form")
    p.add_argument("--batch", type=positive, default=8, help="batch size for the memory report (default 8)")


def run(args) -> None:
    from cnngraph import io, optimize
    from cnngraph.memory import plan

    graph = load(args)
    optimized, reports = optimize(graph, args.passes, check=args.check)
    if args.report:
        for report in reports:
            console.print(str(report), markup=False, highlight=False)
        mib = 2**20
        for label, g in (("input graph", graph), ("optimised graph", optimized)):
            p = plan(g, args.batch)
            console.print(f"activation memory at batch {args.batch}, {label}: {p.unplanned_bytes / mib:.1f} MiB "
                          f"with every value kept, {p.planned_bytes / mib:.1f} MiB planned "
                          f"({len(p.buffer_bytes)} buffers, {len(p.in_place)} in place)")
    if args.print_ir:
        console.print(str(optimized), markup=False, highlight=False)
    console.print(f"{graph.name}: {len(graph.nodes)} nodes -> {len(optimized.nodes)} nodes, "
                  f"{len(graph.params)} -> {len(optimized.params)} parameter tensors")
    if args.output:
        io.save(optimized, args.output)
        console.print(f"wrote {args.output}")
