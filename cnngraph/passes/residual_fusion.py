"""Residual fusion: Conv -> Add(skip) becomes one FusedConv2d(x, skip) (ResNet blocks).

Run before activation fusion, which then absorbs the ReLU after the add. The fused node takes the
Add's place in the schedule, where both the conv's input and the skip are already computed.
"""

from __future__ import annotations

from cnngraph.ir import Graph, Node
from cnngraph.passes import Outcome, PassContext, graph_pass
from cnngraph.passes.activation_fusion import to_fused
from cnngraph.passes.util import sole_consumer, take_over


@graph_pass("residual_fusion")
def residual_fusion(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for add in [n for n in graph.nodes if n.op == "Add" and len(n.inputs) == 2]:
        users = graph.users()
        choice = _pick_conv(graph, add, users)
        if isinstance(choice, str):
            out.skip(add.name, choice)
            continue
        conv, skip = choice
        _merge(graph, conv, skip, add)
        out.did(f"fused {add.name} (+{skip}) into {conv.name}")
    return out


def _pick_conv(graph: Graph, add: Node, users) -> tuple[Node, str] | str:
    """The conv branch to absorb the add (the later one, if both are convs), or why none can."""
    if graph.type_of(add.inputs[0]).shape != graph.type_of(add.inputs[1]).shape:
        return "the add broadcasts"
    reasons = []
    for branch, skip in ((add.inputs[1], add.inputs[0]), (add.inputs[0], add.inputs[1])):
        if branch in graph.inputs:
            continue
        node = graph.node(branch)
        if node.op not in ("Conv2d", "FusedConv2d"):
            continue
        why = sole_consumer(graph, node, users)
        if why is None and node.attrs.get("activation"):
            why = f"'{node.name}' applies its activation before the add"
        if why is None and node.attrs.get("residual"):
            why = f"'{node.name}' already adds a residual"
        if why is None:
            return node, skip
        reasons.append(why)
    return "; ".join(reasons) or "neither input is a convolution"


def _merge(graph: Graph, conv: Node, skip: str, add: Node) -> None:
    to_fused(conv)
    conv.attrs["residual"] = True
    conv.inputs = [conv.inputs[0], skip]
    take_over(graph, conv, add)
