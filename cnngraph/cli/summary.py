"""`cnngraph summary MODEL`: per-layer shapes, parameters, MACs and receptive fields, then the joins.

For every layer: its receptive field, effective stride (jump) and centre (where output pixel 0's
field is centred, in input pixels); a global value (pooled, or a squeeze-and-excitation gate) has
field "all" and no stride or centre, and a map it is broadcast over keeps its own. For every join
(Add, Concat, Mul) of spatial maps: whether its inputs are aligned (same stride and centre, not merely the same shape) and, where not, the
crop that would align them. Joins that are misaligned or fed by a crop are listed; --all-joins
lists every one. A detector's default boxes are listed per feature map with the receptive field of the
head predicting them. --depth K folds the layers into their scopes, the first K parts of their dotted
names (ResNet's layer1.0.conv1 is in layer1 at depth 1), summing parameters and MACs per scope, as
torchinfo's depth does; each scope shows its last layer's output and field.
"""

from cnngraph.cli import common
from cnngraph.cli.common import add_model_args, add_weights_arg, apply_weights, console, load, positive
from cnngraph.types import BATCH

HELP = "per-layer table (shapes, params, MACs, receptive field, stride, centre) and join alignment"


def add_arguments(p) -> None:
    add_model_args(p)
    add_weights_arg(p)
    p.add_argument("--all-joins", action="store_true", help="list every join, aligned or not")
    p.add_argument("--depth", type=positive, metavar="K",
                   help="one row per scope: the first K parts of the dotted layer names, params and MACs summed")


def _fmt(values) -> str:
    """One number when every spatial axis agrees, else one per axis: 7, 7x5, 3x7x7."""
    texts = [f"{v:g}" for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def run(args) -> None:
    from cnngraph.alignment import ALIGNED, CAUSAL, WELL_ALIGNED, joins
    from cnngraph.analysis import node_stats, receptive_fields

    graph = apply_weights(load(args), args)
    fields = receptive_fields(graph)
    rows = node_stats(graph)
    numbers = ("layers", "params", "MACs", "RF", "jump", "ctr")
    table = common.table("scope" if args.depth else "layer", "layers" if args.depth else "op", "output", "params",
                         "MACs", "RF", "jump", "ctr", numeric=numbers, title=graph.name)
    for name, what, last, params, macs in (_scopes(rows, args.depth) if args.depth else
                                           ((r.node.name, r.node.op, r, r.params, r.macs) for r in rows)):
        f = last.field
        table.add_row(name, what, _shape(last.node.type.shape), common.compact(params), common.compact(macs),
                      *(("const", "-", "-") if f.constant else
                        ("all", "-", "-") if f.whole else
                        (_fmt(f.size), _fmt(f.jump), _fmt(f.start))))
    console.print(table)
    console.print("output: per sample (CxHxW); RF: receptive field, jump: stride and ctr: centre of output pixel 0's "
                  "field, in input pixels")
    params, buffers, macs = (sum(getattr(r, a) for r in rows) for a in ("params", "buffers", "macs"))
    act = sum(r.node.type.per_sample() for r in rows) * 4
    for t in graph.inputs.values():
        console.print(f"Input: {t}")
    if graph.info is not None:
        console.print(f"Model info: {graph.info.describe()}", markup=False)
    for name in graph.outputs:
        console.print(f"Output: {graph.type_of(name)} ({name})")
    named = sorted({d for r in rows for d in r.node.type.symbols()} - {BATCH})
    if named:  # a per-region layer's cost counts once per region, as a per-image layer's once per image
        console.print(f"Per sample: one image and one of each of {', '.join(named)}")
    console.print(f"Total params: {params:,}")
    console.print(f"Non-trainable buffers: {buffers:,}")
    console.print(f"MACs per sample: {macs:,} ({macs / 1e9:.2f} G)")
    console.print(f"Activations per sample (float32, all values kept): {act / 2**20:.1f} MiB")
    _box_levels(graph, fields)
    found = joins(graph, fields)
    shown = [j for j in found if args.all_joins or j.status != ALIGNED or any(i.crop for i in j.inputs)]
    if shown:
        joined = common.table("join", "op", "inputs (jump @ ctr)", "alignment", title="Joins")
        for j in shown:
            ins = "\n".join(f"{i.value}: {_fmt(i.field.jump)} @ {_fmt(i.field.start)}" for i in j.inputs)
            joined.add_row(j.node.name, j.node.op, ins, f"{j.status}: {j.describe()}" if j.status != ALIGNED
                           else j.describe())
        console.print(joined)
    bad = [j for j in found if j.status not in WELL_ALIGNED]
    causal = sum(j.status == CAUSAL for j in found)
    verdict = "all aligned" if not bad else f"{len(bad)} misaligned ({', '.join(sorted({j.status for j in bad}))})"
    verdict += f" ({causal} causal)" if causal else ""
    console.print(f"Joins: {len(found)} checked, {verdict}")


def _scopes(rows, depth: int):
    """(scope, layer count, last row, params, MACs) per scope, in order of first appearance."""
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(".".join(r.node.name.split(".")[:depth]), []).append(r)
    return [(scope, str(len(rs)), rs[-1], sum(r.params for r in rs), sum(r.macs for r in rs))
            for scope, rs in groups.items()]


def _shape(shape) -> str:
    """A value's per-sample shape: (N, 64, 56, 56) as 64x56x56."""
    return "x".join(str(d) for d in shape[1:]) or "scalar"


def _box_levels(graph, fields) -> None:
    """A detector's default boxes per feature map, and the receptive field of the head that predicts them."""
    from cnngraph.detection.heads import box_levels

    levels = box_levels(graph, fields)
    if not levels:
        return
    table = common.table("head", "map", "per cell", "boxes", "RF", "jump", numeric=("per cell", "boxes", "RF", "jump"),
                         title="Default boxes per level")
    for level in levels:
        table.add_row(level.head, _fmt(level.map_size), str(level.per_cell), f"{level.boxes:,}",
                      _fmt(level.field.size), _fmt(level.field.jump))
    console.print(table)
    console.print(f"Default boxes: {sum(level.boxes for level in levels):,}")
