"""Common-subexpression elimination: two nodes with the same op, inputs, attributes and equal
parameters compute the same value, so the later one is replaced by the earlier.

In a training graph, nodes with parameters are never merged: two layers that are equal at
initialisation are still two layers.
"""

from __future__ import annotations

import hashlib
import json

from cnngraph.ir import Graph, Node
from cnngraph.passes import Outcome, graph_pass

RANDOM_OPS = ("Dropout",)  # two dropout nodes draw different masks in training


def _key(graph: Graph, node: Node) -> str:
    digest = hashlib.sha256()
    for role in sorted(node.params):
        arr = graph.params[node.params[role]]
        digest.update(f"{role}{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return json.dumps([node.op, node.inputs, node.attrs, digest.hexdigest()], sort_keys=True, default=str)


@graph_pass("cse")
def cse(graph: Graph) -> Outcome:
    out = Outcome()
    seen: dict[str, str] = {}
    for node in list(graph.nodes):
        if graph.training and (node.op in RANDOM_OPS or node.params):
            continue  # random masks differ; parameters equal now will diverge as they train
        key = _key(graph, node)
        if key not in seen:
            seen[key] = node.name
            continue
        if node.name in graph.outputs:
            out.skip(node.name, f"duplicates {seen[key]} but is a graph output")
            continue
        graph.replace_uses(node.name, seen[key])
        graph.remove_node(node.name)
        out.did(f"merged {node.name} into {seen[key]}")
    return out
