"""Dead-code elimination: nodes and parameters that no graph output depends on."""

from cnngraph.ir import Graph
from cnngraph.passes import Outcome, PassContext, graph_pass


@graph_pass("dead_code")
def dead_code(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    live = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node.name in live:
            live.update(node.inputs)
    for node in [n for n in graph.nodes if n.name not in live]:
        graph.remove_node(node.name)
        out.did(f"removed {node.name} ({node.op})")
    used = {key for node in graph.nodes for key in node.params.values()}
    unused = [k for k in graph.params if k not in used]
    for key in unused:
        del graph.params[key]
    if unused:
        out.did(f"dropped {len(unused)} unused parameter tensors")
    return out
