"""Preconditions shared by the rewriting passes."""

from __future__ import annotations

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
