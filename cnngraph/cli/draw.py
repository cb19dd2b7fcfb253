"""`cnngraph draw MODEL -o model.svg|png|dot`: the graph as a picture. Each layer is a box with its op and
output shape; joins are filled yellow, fused nodes green and list what they fuse, outputs have a double
outline. `--passes` draws the graph after that pass pipeline (`default`: what `run` executes). DOT is
written directly; SVG and PNG use Graphviz's `dot` when installed, else networkx and matplotlib.
"""

from cnngraph.cli.common import add_model_args, add_weights_arg, apply_weights, console, load

HELP = "draw a model's graph as SVG, PNG or DOT"


def add_arguments(p) -> None:
    add_model_args(p)
    add_weights_arg(p)
    p.add_argument("-o", "--output", required=True, help="the picture: a .svg, .png or .dot file")
    p.add_argument("--passes", default="none",
                   help='draw the graph after these passes: "none" (default: as declared), "default", or a '
                        "comma-separated list of pass names")


def run(args) -> None:
    from cnngraph.compiler import optimize
    from cnngraph.draw import draw

    graph = apply_weights(load(args), args)
    if args.passes != "none":
        graph, _ = optimize(graph, args.passes)
    how = draw(graph, args.output)
    console.print(f"{graph.name}: {len(graph.nodes)} layers drawn to {args.output} ({how})")
