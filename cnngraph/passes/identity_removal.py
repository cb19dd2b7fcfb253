"""Remove ops that do nothing at inference: Identity, Dropout, zero Pad, same-shape Reshape, ..."""

from cnngraph.ir import Graph, Node
from cnngraph.passes import Outcome, PassContext, graph_pass


def _is_noop(graph: Graph, node: Node) -> bool:
    same_shape = graph.type_of(node.inputs[0]).shape == node.type.shape if node.inputs else False
    if node.op == "Identity":
        return True
    if node.op == "Dropout":
        return not graph.training or node.attrs["p"] == 0
    if node.op in ("Reshape", "Slice", "Flatten"):
        return same_shape
    if node.op == "Pad":
        return not any(node.attrs["padding"])
    if node.op == "Upsample":
        return same_shape
    if node.op == "Concat":
        return len(node.inputs) == 1
    return False


@graph_pass("identity_removal")
def identity_removal(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for node in list(graph.nodes):
        if not _is_noop(graph, node):
            continue
        if node.name in graph.outputs:
            out.skip(node.name, "is a graph output: removing it would rename the output")
            continue
        graph.replace_uses(node.name, node.inputs[0])
        graph.remove_node(node.name)
        out.did(f"removed {node.name} ({node.op})")
    return out
