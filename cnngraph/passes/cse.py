"""Common-subexpression elimination: two nodes with the same op, inputs, attributes and equal
parameters compute the same value, so the later one is replaced by the earlier.

Parameters are compared only when everything else already matches, so a VGG's 138M weights are
never hashed. In a training graph, random ops (the op's ``random`` trait: each draws its own mask)
and nodes with parameters are never merged: two layers that are equal at initialisation are still
two layers.
"""

from __future__ import annotations

import json

import numpy as np

from cnngraph.ir import Graph, Node
from cnngraph.ops import get_op
from cnngraph.passes import Outcome, PassContext, graph_pass


def _structure(node: Node) -> str:
    return json.dumps([node.op, node.inputs, node.attrs, sorted(node.params)], sort_keys=True, default=str)


def _same_params(graph: Graph, a: Node, b: Node) -> bool:
    return all(np.array_equal(graph.params[a.params[r]], graph.params[b.params[r]]) for r in a.params)


@graph_pass("cse")
def cse(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    seen: dict[str, list[Node]] = {}
    for node in list(graph.nodes):
        if graph.training and (get_op(node.op).random or node.params):
            continue  # random masks differ; parameters equal now will diverge as they train
        candidates = seen.setdefault(_structure(node), [])
        twin = next((c for c in candidates if _same_params(graph, c, node)), None)
        if twin is None:
            candidates.append(node)
        elif node.name in graph.outputs:
            out.skip(node.name, f"duplicates {twin.name} but is a graph output")
        else:
            graph.replace_uses(node.name, twin.name)
            graph.remove_node(node.name)
            out.did(f"merged {node.name} into {twin.name}")
    return out
