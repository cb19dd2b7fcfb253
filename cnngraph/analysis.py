"""Static analysis of a graph: parameters, MACs, activation sizes and receptive fields per node.

Receptive fields use the usual algebra per spatial axis: a window op with kernel k, stride s and
leading pad p maps a value with field size r, jump j (distance between neighbouring outputs in
input pixels: the effective stride) and first centre c (where output pixel 0's field is centred,
in input pixel coordinates) to r + (k - 1) j, j s and c + ((k - 1) / 2 - p) j. Ops that see the
whole input (global pooling, linear layers) make the field the whole image; a join of such a
global value with a map (squeeze-and-excitation) keeps the map's field.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnngraph.ir import Graph, Node
from cnngraph.ops import get_op


@dataclass(frozen=True)
class Field:
    """Receptive field of one value along (H, W): size, jump (effective stride) and first centre."""

    size: tuple[float, float] = (1, 1)
    jump: tuple[float, float] = (1, 1)
    start: tuple[float, float] = (0, 0)
    whole: bool = False  # sees the entire input image
    constant: bool = False  # depends on no graph input (a Constant and what is computed from it)


@dataclass(frozen=True)
class NodeStats:
    node: Node
    params: int
    buffers: int
    macs: int  # per sample
    field: Field


def receptive_fields(graph: Graph) -> dict[str, Field]:
    """Field of every value. At a join (or any op of several inputs) the size is the union of the
    inputs' fields and the geometry (jump, centre) that of ``reference_input``; whether the inputs
    agree is checked by ``cnngraph.alignment``."""
    fields: dict[str, Field] = {name: Field() for name in graph.inputs}
    for node in graph.nodes:
        if all(fields[v].constant for v in node.inputs):  # also true for a node without inputs
            fields[node.name] = Field(constant=True)
            continue
        base = _union([fields[v] for v in node.inputs if not fields[v].constant],
                      fields[reference_input(graph, node, fields)])
        win = get_op(node.op).window(node.attrs, [graph.type_of(v) for v in node.inputs])
        if base.whole or win.global_:
            fields[node.name] = Field(_whole_size(graph), base.jump, base.start, True)
            continue
        size, jump, start = [], [], []
        for ax in range(2):
            k, s, p = win.kernel[ax], win.stride[ax], win.pad[ax]
            size.append(base.size[ax] + (k - 1) * base.jump[ax])
            jump.append(base.jump[ax] * s)
            start.append(base.start[ax] + ((k - 1) / 2 - p) * base.jump[ax])
        fields[node.name] = Field(tuple(size), tuple(jump), tuple(start))
    return fields


def reference_input(graph: Graph, node: Node, fields: dict[str, Field]) -> str:
    """The input whose geometry a multi-input node keeps: the first with a spatial field that is not a
    crop (a skip is cropped to fit the path it joins, so the path is the reference), else the first
    spatial one, else the first that is not constant."""
    varying = [v for v in node.inputs if not fields[v].constant]
    spatial = [v for v in varying if not fields[v].whole] or varying
    return next((v for v in spatial if spatial_crop(graph, v) is None), spatial[0])


def spatial_crop(graph: Graph, value: str) -> tuple[str, tuple[int, int]] | None:
    """(source, (top, left)) when ``value`` is a Slice of H and/or W (``dsl.crop``, FCN's Crop)."""
    if value in graph.inputs:
        return None
    node = graph.node(value)
    if node.op != "Slice" or not {2, 3} & set(node.attrs["axes"]):
        return None
    starts = dict(zip(node.attrs["axes"], node.attrs["starts"]))
    return node.inputs[0], (starts.get(2, 0), starts.get(3, 0))


def _union(fields: list[Field], ref: Field) -> Field:
    """The field covering every spatial input's field of output pixel 0, with ``ref``'s jump and centre.

    Whole-image inputs beside spatial ones (a squeeze-and-excitation gate, a global context vector)
    are broadcast over the map: they have no pixel geometry, so the map's field, stride and centre
    carry on, and later joins stay checkable.
    """
    fields = [f for f in fields if not f.whole] or fields[:1]
    if len(fields) == 1:
        return fields[0]
    size = []
    for ax in range(2):
        lo = min(f.start[ax] - (f.size[ax] - 1) / 2 for f in fields)
        hi = max(f.start[ax] + (f.size[ax] - 1) / 2 for f in fields)
        size.append(max(hi - ref.start[ax], ref.start[ax] - lo) * 2 + 1)
    return Field(tuple(size), ref.jump, ref.start)


def _whole_size(graph: Graph) -> tuple[float, float]:
    """The spatial size of the (first image) input, which a global field covers."""
    for t in graph.inputs.values():
        if t.rank == 4:
            return (t.shape[2], t.shape[3])
    return (1, 1)


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one node for one sample."""
    return int(get_op(node.op).macs(node.attrs, [graph.type_of(v) for v in node.inputs], node.type))


def node_stats(graph: Graph) -> list[NodeStats]:
    fields = receptive_fields(graph)
    rows = []
    for node in graph.nodes:
        specs = graph.param_specs(node)
        params = sum(graph.params[k].size for r, k in node.params.items() if specs[r].trainable)
        buffers = sum(graph.params[k].size for r, k in node.params.items() if not specs[r].trainable)
        rows.append(NodeStats(node, int(params), int(buffers), node_macs(graph, node), fields[node.name]))
    return rows


def total_macs(graph: Graph) -> int:
    """Multiply-accumulates for one sample."""
    return sum(r.macs for r in node_stats(graph))
