"""Scale folding: Mul or Add by a per-output-channel constant goes into the conv/linear before it.

For conv output (N, O, H, W) the constant must broadcast per channel: after right-aligning its
shape, every dimension but the channel one is 1 (and the channel one is O or 1). Then
Mul: W' = W * c, b' = b * c; Add: b' = b + c. A constant that varies over space or batch is not
a per-channel scale, and is left alone with that reason. This is also how a BatchNorm exported as
scale and shift (Mul then Add) folds away.
"""

from __future__ import annotations

import numpy as np

from cnngraph.ir import Graph, Node
from cnngraph.passes import Outcome, PassContext, graph_pass
from cnngraph.passes.util import (
    bias_of,
    owns_params,
    param_users,
    scale_output_channels,
    set_bias,
    sole_consumer,
)

TARGETS = ("Conv2d", "Linear")


@graph_pass("scale_folding")
def scale_folding(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for node in [n for n in graph.nodes if n.op in ("Mul", "Add") and len(n.inputs) == 2]:
        found = _split(graph, node)
        if found is None:
            continue
        producer, const = found
        reason = (sole_consumer(graph, producer, graph.users()) or owns_params(graph, producer, param_users(graph))
                  or _why_not_channelwise(graph, producer, const))
        if reason is None and node.name in graph.outputs:
            reason = f"'{node.name}' is a graph output: folding would rename the output"
        if reason:
            out.skip(node.name, reason)
            continue
        _fold(graph, producer, node.op, _per_channel(graph, producer, const))
        graph.replace_uses(node.name, producer.name)
        graph.remove_node(node.name)
        out.did(f"folded {node.name} ({node.op} by '{const.name}') into {producer.name}")
    return out


def _split(graph: Graph, node: Node) -> tuple[Node, Node] | None:
    """(conv or linear producer, constant) when the node combines exactly those, else None."""
    a, b = (None if v in graph.inputs else graph.node(v) for v in node.inputs)
    for producer, const in ((a, b), (b, a)):
        if producer is not None and const is not None and producer.op in TARGETS and const.op == "Constant":
            return producer, const
    return None


def _why_not_channelwise(graph: Graph, producer: Node, const: Node) -> str | None:
    out_shape = producer.type.shape
    shape = (1,) * (len(out_shape) - len(const.type.shape)) + tuple(const.type.shape)
    channels = out_shape[1]
    if len(shape) != len(out_shape) or any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return f"constant '{const.name}' of shape {const.type.shape} does not broadcast per output channel"
    if not np.issubdtype(graph.params[const.params["value"]].dtype, np.floating):
        return f"constant '{const.name}' is not floating point: folding would not be exact"
    return None


def _per_channel(graph: Graph, producer: Node, const: Node) -> np.ndarray:
    value = graph.params[const.params["value"]].astype(np.float64).reshape(-1)
    return np.broadcast_to(value, (producer.type.shape[1],))


def _fold(graph: Graph, producer: Node, op: str, c: np.ndarray) -> None:
    bias = bias_of(graph, producer, c.size)
    if op == "Mul":
        scale_output_channels(graph, producer, c)
        bias = bias * c
    else:
        bias = bias + c
    set_bias(graph, producer, bias)
