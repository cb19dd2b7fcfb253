"""Channels-last lowering: nodes the target backend runs faster in NHWC are marked so, with explicit
Layout conversions at the boundaries.

The IR stays logically NCHW: a marked node's 4-D values are stored channels-last, and a Layout node
converts wherever a value meets a reader that wants the other layout. One conversion serves every
reader of a value, adjacent opposite conversions cancel, graph inputs and outputs stay NCHW, and
``--print-ir`` shows every conversion. A backend asks for this pass (its ``lowering``); the pass
learns which layouts the backend's kernels run each node in from the context. Training graphs stay
NCHW for now: the channels-last kernels have no backward yet.
"""

from __future__ import annotations

from cnngraph.ir import Graph, Node
from cnngraph.ops import get_op
from cnngraph.ops.base import LAYOUT, NCHW, NHWC
from cnngraph.passes import Outcome, PassContext, graph_pass


@graph_pass("channels_last")
def channels_last(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    if ctx.layouts is None:
        out.skip(graph.name, "no target backend: nothing says which nodes could run channels-last")
        return out
    if graph.training:
        out.skip(graph.name, "training graphs stay NCHW: the channels-last kernels have no backward yet")
        return out
    lowered = _choose(graph, ctx, out)
    for node in lowered:
        node.attrs[LAYOUT] = NHWC
    inserted = _convert_at_boundaries(graph)
    cancelled = _cancel_pairs(graph)
    seeds = sum(1 for node in lowered if _prefers(node, ctx))
    if inserted - cancelled > 2 * seeds:  # each lowered convolution saves the backend two transposes
        _undo(graph)
        out.skip(graph.name, f"lowering {seeds} channels-last nodes would need {inserted - cancelled} layout "
                             f"conversions, more than it saves")
    elif lowered:
        out.did(f"{len(lowered)} nodes run channels-last ({seeds} where the backend prefers it); "
                f"{inserted} layout conversions inserted, {cancelled} cancelled")
    return out


def _choose(graph: Graph, ctx: PassContext, out: Outcome) -> list[Node]:
    """Nodes the backend prefers channels-last, then (in schedule order) every node that can run it and
    reads only channels-last values: activations and joins follow their convolutions."""
    chosen: set[str] = set()
    for node in graph.nodes:
        if _lowerable(graph, node, ctx, out) and (_prefers(node, ctx) or all(
                v in chosen for v in node.inputs if graph.type_of(v).rank == 4)):
            chosen.add(node.name)
    return [node for node in graph.nodes if node.name in chosen]


def _prefers(node: Node, ctx: PassContext) -> bool:
    """The backend's kernels for ``node`` want NHWC first, and it is no element-wise op (those only follow)."""
    op = get_op(node.op)
    return ctx.layouts(node)[0] == NHWC and not (op.in_place or op.broadcasts)


def _lowerable(graph: Graph, node: Node, ctx: PassContext, out: Outcome) -> bool:
    if node.op == "Layout" or node.attrs.get(LAYOUT, NCHW) == NHWC or node.type.rank != 4:
        return False
    if NHWC not in ctx.layouts(node) or not all(graph.type_of(v).rank == 4 for v in node.inputs):
        return False
    if node.name in graph.outputs:
        out.skip(node.name, "graph outputs stay NCHW")
        return False
    if get_op(node.op).broadcasts and any(graph.type_of(v).shape != node.type.shape for v in node.inputs):
        out.skip(node.name, f"a {node.op} that broadcasts stays NCHW")
        return False
    return True


def _undo(graph: Graph) -> None:
    """Back to NCHW everywhere: conversions removed, readers pointed at the values they converted."""
    for node in [n for n in graph.nodes if n.op == "Layout"]:
        graph.replace_uses(node.name, node.inputs[0])
        graph.remove_node(node.name)
    for node in graph.nodes:
        node.attrs.pop(LAYOUT, None)


def _layout(graph: Graph, value: str) -> str:
    """How ``value`` is stored: graph inputs NCHW, a Layout node's output as it says, others as marked."""
    if value in graph.inputs:
        return NCHW
    node = graph.node(value)
    return node.attrs["to"] if node.op == "Layout" else node.attrs.get(LAYOUT, NCHW)


def _wanted(node: Node) -> str:
    """The layout ``node`` reads: a Layout node reads the other one; any other node, its own."""
    if node.op == "Layout":
        return NCHW if node.attrs["to"] == NHWC else NHWC
    return node.attrs.get(LAYOUT, NCHW)


def _convert_at_boundaries(graph: Graph) -> int:
    """A Layout node before every reader of a 4-D value stored in the other layout (one per value and layout)."""
    made: dict[tuple[str, str], str] = {}
    for node in list(graph.nodes):
        want = _wanted(node)
        for i, value in enumerate(node.inputs):
            if graph.type_of(value).rank != 4 or _layout(graph, value) == want:
                continue
            if (value, want) not in made:
                name = f"{value}.to_{want.lower()}"
                graph.nodes.insert(graph.nodes.index(node), Node(name, "Layout", [value], {"to": want}))
                graph.reindex()
                made[value, want] = name
            node.inputs[i] = made[value, want]
    return len(made)


def _cancel_pairs(graph: Graph) -> int:
    """Readers of Layout(Layout(v)) that restores v's own layout read v itself; the unused pair goes."""
    cancelled = 0
    for node in list(graph.nodes):
        if node.op != "Layout" or node.name in graph.outputs:
            continue
        source = graph.node(node.inputs[0]) if node.inputs[0] not in graph.inputs else None
        if source is not None and source.op == "Layout" and _layout(graph, source.inputs[0]) == node.attrs["to"]:
            graph.replace_uses(node.name, source.inputs[0])
            graph.remove_node(node.name)
            cancelled += 1
    users = graph.users()
    for node in list(graph.nodes):  # conversions nothing reads any more
        if node.op == "Layout" and not users[node.name] and node.name not in graph.outputs:
            graph.remove_node(node.name)
    return cancelled
