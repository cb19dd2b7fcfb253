"""Preconditions and parameter rewrites shared by the rewriting passes."""

from __future__ import annotations

import numpy as np

from cnngraph.ir import Graph, Node


def param_users(graph: Graph) -> dict[str, int]:
    """How many nodes reference each parameter key (shared weights have more than one)."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        for key in node.params.values():
            counts[key] = counts.get(key, 0) + 1
    return counts


def sole_consumer(graph: Graph, producer: Node, users: dict[str, list[Node]]) -> str | None:
    """Why ``producer``'s output cannot be absorbed by its consumer, or None if it can."""
    if producer.name in graph.outputs:
        return f"'{producer.name}' is a graph output"
    if len(users[producer.name]) != 1:
        return f"'{producer.name}' has {len(users[producer.name])} consumers"
    return None


def owns_params(graph: Graph, node: Node, shared: dict[str, int]) -> str | None:
    """Why ``node``'s parameters cannot be rewritten in place, or None if they can."""
    for key in node.params.values():
        if shared.get(key, 0) > 1:
            return f"weights '{key}' are shared with another node"
    return None


def take_over(graph: Graph, keeper: Node, absorbed: Node) -> None:
    """``keeper`` absorbs ``absorbed`` (its only consumer): it moves to the absorbed node's place in
    the schedule and yields its value. A graph output keeps its name: the keeper takes it."""
    graph.nodes.remove(keeper)
    graph.nodes[graph.nodes.index(absorbed)] = keeper
    if absorbed.name in graph.outputs:
        keeper.name = absorbed.name
    else:
        graph.replace_uses(absorbed.name, keeper.name)
    graph.reindex()


def scale_output_channels(graph: Graph, node: Node, scale: np.ndarray) -> None:
    """Multiply a Conv2d/ConvTranspose2d/Linear weight per output channel, in float64, stored back in
    the weight's dtype (a new array: parameter arrays are shared with other graph copies)."""
    key = node.params["weight"]
    weight = graph.params[key].astype(np.float64)
    if node.op == "ConvTranspose2d":  # (C_in, O/g, kh, kw): output channels sit in dim 1, per group
        g, o = node.attrs["groups"], scale.size
        shaped = weight.reshape(g, weight.shape[0] // g, o // g, *weight.shape[2:])
        scaled = (shaped * scale.reshape(g, 1, o // g, *[1] * (weight.ndim - 2))).reshape(weight.shape)
    else:  # Conv2d (O, C/g, kh, kw) and Linear (O, I): output channels lead
        scaled = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
    graph.params[key] = scaled.astype(graph.params[key].dtype)


def bias_of(graph: Graph, node: Node, channels: int) -> np.ndarray:
    """The node's bias in float64; zeros when it has none."""
    if "bias" in node.params:
        return graph.params[node.params["bias"]].astype(np.float64)
    return np.zeros(channels)


def set_bias(graph: Graph, node: Node, bias: np.ndarray) -> None:
    """Store ``bias`` in the weight's dtype; a node without a bias gains ``<node>.bias``."""
    key = node.params.get("bias", f"{node.name}.bias")
    graph.params[key] = bias.astype(graph.params[node.params["weight"]].dtype)
    node.params["bias"] = key
    node.attrs["bias"] = True
