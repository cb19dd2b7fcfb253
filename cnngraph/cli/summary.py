"""`cnngraph summary MODEL`: per-layer shapes, parameters, MACs and receptive fields, then totals."""

from rich.table import Table

from cnngraph.cli.common import add_model_args, console, load

HELP = "per-layer table: shapes, params, MACs, receptive field"


def add_arguments(p) -> None:
    add_model_args(p)


def _fmt_field(pair, whole=False) -> str:
    if whole:
        return "all"
    a, b = (f"{v:g}" for v in pair)
    return a if a == b else f"{a}x{b}"


def run(args) -> None:
    from cnngraph.analysis import node_stats

    graph = load(args)
    rows = node_stats(graph)
    table = Table("layer", "op", "output", "params", "MACs", "RF", "stride", title=f"{graph.name}")
    for r in rows:
        table.add_row(r.node.name, r.node.op, str(r.node.type.shape).replace("'", ""), f"{r.params:,}",
                      f"{r.macs:,}", _fmt_field(r.field.size, r.field.whole), _fmt_field(r.field.jump))
    console.print(table)
    params, buffers, macs = (sum(getattr(r, a) for r in rows) for a in ("params", "buffers", "macs"))
    act = sum(r.node.type.per_sample() for r in rows) * 4
    for t in graph.inputs.values():
        console.print(f"Input: {t}")
    console.print(f"Total params: {params:,}")
    console.print(f"Non-trainable buffers: {buffers:,}")
    console.print(f"MACs per sample: {macs:,} ({macs / 1e9:.2f} G)")
    console.print(f"Activations per sample (float32, all values kept): {act / 2**20:.1f} MiB")
