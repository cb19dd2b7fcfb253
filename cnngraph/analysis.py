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
    """Receptive field of one value along each spatial axis (L; H, W; or D, H, W): size, jump
    (effective stride) and first centre."""

    size: tuple[float, ...] = (1, 1)
    jump: tuple[float, ...] = (1, 1)
    start: tuple[float, ...] = (0, 0)
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
    fields: dict[str, Field] = {name: _input_field(t) for name, t in graph.inputs.items()}
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
        for ax in range(len(base.size)):
            k, s, p = _axis(win.kernel, ax, 1), _axis(win.stride, ax, 1), _axis(win.pad, ax, 0)
            size.append(base.size[ax] + (k - 1) * base.jump[ax])
            jump.append(base.jump[ax] * s)
            start.append(base.start[ax] + ((k - 1) / 2 - p) * base.jump[ax])
        fields[node.name] = Field(tuple(size), tuple(jump), tuple(start))
    return fields


def _input_field(t) -> Field:
    """A graph input's own field: one pixel per spatial axis (two axes for a non-spatial input)."""
    axes = t.rank - 2 if t.rank >= 3 else 2
    return Field((1,) * axes, (1,) * axes, (0,) * axes)


def _axis(values: tuple, ax: int, default: float) -> float:
    """A window's entry for spatial axis ``ax``; an empty window tuple leaves the axis alone."""
    return values[ax] if ax < len(values) else default


def reference_input(graph: Graph, node: Node, fields: dict[str, Field]) -> str:
    """The input whose geometry a multi-input node keeps: the first with a spatial field that is not a
    crop (a skip is cropped to fit the path it joins, so the path is the reference), else the first
    spatial one, else the first that is not constant."""
    varying = [v for v in node.inputs if not fields[v].constant]
    spatial = [v for v in varying if not fields[v].whole] or varying
    return next((v for v in spatial if spatial_crop(graph, v) is None), spatial[0])


def spatial_crop(graph: Graph, value: str) -> tuple[str, tuple[int, ...]] | None:
    """(source, (top, left)) when ``value`` is a Slice of spatial axes (``dsl.crop``, FCN's Crop); one
    start per spatial axis of the value ((front, top, left) in 3-D)."""
    if value in graph.inputs:
        return None
    node = graph.node(value)
    spatial_axes = range(2, node.type.rank)
    if node.op != "Slice" or not set(spatial_axes) & set(node.attrs["axes"]):
        return None
    starts = dict(zip(node.attrs["axes"], node.attrs["starts"]))
    return node.inputs[0], tuple(starts.get(a, 0) for a in spatial_axes)


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
    for ax in range(len(ref.size)):
        lo = min(f.start[ax] - (f.size[ax] - 1) / 2 for f in fields)
        hi = max(f.start[ax] + (f.size[ax] - 1) / 2 for f in fields)
        size.append(max(hi - ref.start[ax], ref.start[ax] - lo) * 2 + 1)
    return Field(tuple(size), ref.jump, ref.start)


def _whole_size(graph: Graph) -> tuple[float, ...]:
    """The spatial size of the first input with spatial axes, which a global field covers."""
    for t in graph.inputs.values():
        if t.rank >= 3:
            return t.shape[2:]
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
