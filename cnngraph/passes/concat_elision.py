"""Concat elision: mark channel Concats whose producers can write straight into their slice.

The layout (which Concats share a buffer, which inputs are computed in place) is
``cnngraph.concat_layout.layout``; this pass only marks the Concats where it saves a copy, and
reports the inputs that will still be copied and why. Inference only: a training graph's backward
reads each value as it was produced, and the training executor runs Concat plainly anyway.
"""

from __future__ import annotations

from cnngraph.concat_layout import layout
from cnngraph.ir import Graph
from cnngraph.passes import Outcome, PassContext, graph_pass


@graph_pass("concat_elision")
def concat_elision(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    concats = [n for n in graph.nodes if n.op == "Concat"]
    if graph.training:
        for node in concats:
            out.skip(node.name, "the graph is built for training")
        return out
    for node in concats:
        if node.attrs["axis"] != 1:
            out.skip(node.name, f"joins axis {node.attrs['axis']}, not the channels")
    plan = layout(graph, candidate=lambda n: n.op == "Concat" and n.attrs["axis"] == 1)
    members = {o: [c for c, owner in plan.owner.items() if owner == o and c != o] for o in plan.owners()}
    for owner, prefixes in members.items():
        placed = sum(slot.owner == owner for slot in plan.placed.values())
        if not (placed or prefixes or owner in plan.placed):
            graph.node(owner).attrs["elide"] = False
            reasons = "; ".join(why for concat, _, why in plan.declined if concat == owner)
            out.skip(owner, f"no input can be written in place: {reasons}")
            continue
        for name in [owner, *prefixes]:
            graph.node(name).attrs["elide"] = True
        shared = f", shared by {len(prefixes)} prefix concats" if prefixes else ""
        inside = f", inside {plan.placed[owner].owner}'s buffer" if owner in plan.placed else ""
        out.did(f"{owner}: {placed} of {len(graph.node(owner).inputs)} inputs written in place{shared}{inside}")
    for concat, value, why in plan.declined:
        if graph.node(concat).attrs["elide"]:
            out.skip(concat, f"copies an input into its slice: {why}")
    return out
