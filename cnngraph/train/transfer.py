"""Transfer learning, the two recipes from the lectures.

Feature extractor: freeze everything up to a named layer (that layer and all it depends on) and
train the rest. Fine-tuning: replace the classifier head for the new task's ``num_classes`` and
train all (or the unfrozen) parameters. ``replace_head`` returns a new verified Graph; freezing
acts on a compiled training model through its ``freeze(keys)``.
"""

from __future__ import annotations

import difflib

import networkx as nx

from cnngraph.errors import GraphError
from cnngraph.init import initialize
from cnngraph.ir import Graph, Node


def _node(graph: Graph, name: str) -> Node:
    """The node called ``name``, else the last node of scope ``name`` ("layer3"), else a GraphError."""
    names = [n.name for n in graph.nodes]
    if name not in names:
        scoped = [n for n in names if n.startswith(name + ".")]
        if scoped:
            return graph.node(scoped[-1])
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise GraphError(f"no layer named '{name}' in {graph.name}{hint}")
    return graph.node(name)


def frozen_keys(graph: Graph, upto: str) -> list[str]:
    """The trainable parameters of layer ``upto`` (or scope: its last layer) and of every layer it depends on."""
    last = _node(graph, upto).name
    upstream = nx.ancestors(graph.to_networkx(), last) | {last}
    return [key for node in graph.nodes if node.name in upstream
            for role, key in node.params.items() if graph.param_specs(node)[role].trainable]


def freeze_upto(model, graph: Graph, upto: str) -> list[str]:
    """Freeze ``model``'s parameters up to ``upto``; returns the frozen keys."""
    keys = frozen_keys(graph, upto)
    model.freeze(keys)
    return keys


def replace_head(graph: Graph, num_classes: int, seed: int = 0) -> Graph:
    """A copy of ``graph`` whose last Linear layer has ``num_classes`` outputs and fresh parameters."""
    heads = [n for n in graph.nodes if n.op == "Linear"]
    if not heads:
        raise GraphError(f"{graph.name} has no Linear layer to replace as its classifier head")
    if num_classes < 1:
        raise GraphError(f"num_classes must be >= 1, got {num_classes}")
    new = graph.copy()
    head = new.node(heads[-1].name)
    head.attrs = {**head.attrs, "out_features": num_classes}
    for role, spec in new.param_specs(head).items():
        new.params[head.params[role]] = initialize(spec, head.params[role], seed)
    return new.retyped()  # types downstream of the head change
