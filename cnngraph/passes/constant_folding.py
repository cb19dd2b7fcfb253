"""Constant folding: a node whose inputs are all constants is computed once, at compile time.

The result replaces the node as a Constant of the same name (so consumers need no rewiring);
the folded node's own parameters (a conv applied to a constant, say) are used and then dropped by
dead-code elimination. Values that depend on the batch are never constant. The node is computed
in float64 by the pass context's evaluator and stored in the dtype of its first input.
"""

from __future__ import annotations

from cnngraph.ir import Graph
from cnngraph.ops import get_op
from cnngraph.passes import Outcome, PassContext, graph_pass


@graph_pass("constant_folding")
def constant_folding(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for node in list(graph.nodes):
        if node.op == "Constant" or not node.inputs:
            continue
        if any(v in graph.inputs or graph.node(v).op != "Constant" for v in node.inputs):
            continue
        if node.type.symbols() or (get_op(node.op).random and graph.training):
            out.skip(node.name, "its result depends on the batch or on chance")
            continue
        inputs = [graph.params[graph.node(v).params["value"]] for v in node.inputs]
        params = {role: graph.params[key] for role, key in node.params.items()}
        value = ctx.evaluator.node(node, inputs, params)
        key = f"{node.name}.value"
        graph.params[key] = value.astype(graph.params[graph.node(node.inputs[0]).params["value"]].dtype)
        node.op, node.inputs, node.attrs, node.params = "Constant", [], {"shape": value.shape}, {"value": key}
        out.did(f"folded {node.name} into a constant of shape {value.shape}")
    return out

