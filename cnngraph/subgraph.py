"""The part of a graph that some of its outputs need: any-time networks stop at an early exit by
running only what that exit depends on."""

from __future__ import annotations

from cnngraph.errors import GraphError
from cnngraph.ir import Graph


def keep_outputs(graph: Graph, outputs: list[str]) -> Graph:
    """A verified copy of ``graph`` with only ``outputs`` and the nodes, inputs and parameters they need."""
    unknown = [o for o in outputs if o not in graph.outputs]
    if unknown or not outputs:
        raise GraphError(f"graph '{graph.name}' has outputs {graph.outputs}; cannot keep {unknown or outputs}")
    needed, stack = set(), list(outputs)
    while stack:
        value = stack.pop()
        if value in needed or value in graph.inputs:
            continue
        needed.add(value)
        stack.extend(graph.node(value).inputs)
    out = Graph(graph.name)
    out.training = graph.training
    out.info = graph.info
    for node in graph.nodes:
        if node.name in needed:
            out.add_node(node)
            out.params.update({k: graph.params[k] for k in node.params.values()})
    for name, t in graph.inputs.items():
        if any(name in n.inputs for n in out.nodes):
            out.add_input(name, t)
    out.outputs = list(outputs)
    return out.copy().verify()
