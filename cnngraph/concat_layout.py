"""Concat elision: which Concat outputs share one buffer, and which values are computed in their slice.

Only Concats marked ``elide=True`` (by the concat_elision pass, channel axis 1) take part. A marked
Concat whose inputs begin another marked Concat's inputs is a channel prefix of that one's buffer:
DenseNet's layer concats are all prefixes of their block's last one, so a block needs one buffer
and every feature map is written once, instead of once per later layer. A value is *placed* (its
producer writes straight into its slice) when the producer's op has the ``writes_into`` trait (its
kernels can write into a destination; or it is itself a buffer-owning Concat, placed into an outer
one), it is no graph input or output, and no earlier slice holds it; every other input is copied
into its slice once. Nothing writes into a value after producing it, so its other consumers may read
the slice as it is.

The pass and the executor both read this one function: what the pass reports is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnngraph.ir import Graph, Node
from cnngraph.ops import get_op


@dataclass(frozen=True)
class Slot:
    """Channels ``start:stop`` of the buffer owned by Concat ``owner``."""

    owner: str
    start: int
    stop: int


@dataclass
class ConcatLayout:
    owner: dict[str, str] = field(default_factory=dict)  # marked Concat -> the Concat owning its buffer
    placed: dict[str, Slot] = field(default_factory=dict)  # value -> the slice its producer writes into
    declined: list[tuple[str, str, str]] = field(default_factory=list)  # (concat, input, why it is copied)

    def owners(self) -> list[str]:
        return [c for c, o in self.owner.items() if c == o]

    def slots(self, graph: Graph, owner: str) -> list[Slot]:
        """One slot per input of ``owner``, in order."""
        bounds, start = [], 0
        for v in graph.node(owner).inputs:
            stop = start + graph.type_of(v).shape[1]
            bounds.append(Slot(owner, start, stop))
            start = stop
        return bounds


def marked(node: Node) -> bool:
    return node.op == "Concat" and node.attrs.get("elide", False)


def layout(graph: Graph, candidate=marked) -> ConcatLayout:
    """The layout for the Concats ``candidate`` accepts (the marked ones, unless the pass asks)."""
    result = ConcatLayout()
    concats = sorted((n for n in graph.nodes if candidate(n)), key=lambda n: -len(n.inputs))  # stable: schedule order
    for node in concats:
        result.owner[node.name] = _owner(graph, node, result)
    for name in (n.name for n in graph.nodes if result.owner.get(n.name) == n.name):
        for v, slot in zip(graph.node(name).inputs, result.slots(graph, name)):
            why = _why_copied(graph, v, result)
            if why is None:
                result.placed[v] = slot
            else:
                result.declined.append((name, v, why))
    return result


def _owner(graph: Graph, node: Node, result: ConcatLayout) -> str:
    """The longest marked Concat this one is a channel prefix of (itself if none; graph outputs own theirs)."""
    if node.name in graph.outputs:
        return node.name
    k = len(node.inputs)
    return next((o for o in result.owners() if graph.node(o).inputs[:k] == node.inputs), node.name)


def _why_copied(graph: Graph, value: str, result: ConcatLayout) -> str | None:
    """Why ``value`` cannot be computed in its slice, or None if it can."""
    if value in graph.inputs:
        return f"'{value}' is a graph input"
    if value in graph.outputs:
        return f"'{value}' is a graph output"
    if value in result.placed:
        return f"'{value}' already lives in '{result.placed[value].owner}'"
    producer = graph.node(value)
    if result.owner.get(value) not in (None, value):
        return f"'{value}' is a prefix of '{result.owner[value]}'"
    if value not in result.owner and not get_op(producer.op).writes_into:
        return f"'{value}' ({producer.op}) cannot write into a slice"
    return None
