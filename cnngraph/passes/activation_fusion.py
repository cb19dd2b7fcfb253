"""Fuse Conv2d/Linear (+ bias) with the activation that follows (an op with the ``activation`` trait)
into one FusedConv2d/FusedLinear."""

from __future__ import annotations

from cnngraph.ir import Graph, Node
from cnngraph.ops import get_op
from cnngraph.ops.fused import FUSED_DEFAULTS
from cnngraph.passes import Outcome, PassContext, graph_pass
from cnngraph.passes.util import sole_consumer, take_over

FUSED = {"Conv2d": "FusedConv2d", "Linear": "FusedLinear"}


def to_fused(node: Node) -> None:
    """Turn a plain Conv2d/Linear into its fused form with no residual and no activation yet."""
    if node.op in FUSED:
        node.op = FUSED[node.op]
        node.attrs = {**node.attrs, **FUSED_DEFAULTS}


@graph_pass("activation_fusion")
def activation_fusion(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for act in [n for n in graph.nodes if get_op(n.op).activation]:
        src = act.inputs[0]
        if src in graph.inputs:
            continue
        producer = graph.node(src)
        if producer.op not in (*FUSED, *FUSED.values()):
            continue
        reason = sole_consumer(graph, producer, graph.users())
        if reason is None and producer.attrs.get("activation"):
            reason = f"'{producer.name}' already applies {producer.attrs['activation']}"
        if reason:
            out.skip(act.name, reason)
            continue
        _absorb(graph, producer, act)
        out.did(f"fused {act.name} ({act.op}) into {producer.name}")
    return out


def _absorb(graph: Graph, producer: Node, act: Node) -> None:
    to_fused(producer)
    producer.attrs["activation"] = act.op
    producer.attrs["activation_attrs"] = dict(act.attrs)
    take_over(graph, producer, act)
