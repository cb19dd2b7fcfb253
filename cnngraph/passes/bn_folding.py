"""Fold an inference-mode BatchNorm into the Conv2d, ConvTranspose2d or Linear that feeds it.

With s = gamma / sqrt(var + eps): W' = W * s (per output channel), b' = (b - mean) * s + beta.
The arithmetic runs in float64 and is cast back, so folding adds no more error than storing
the result in the parameters' dtype.
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

FOLDABLE = ("Conv2d", "ConvTranspose2d", "Linear")


@graph_pass("bn_folding")
def bn_folding(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for bn in [n for n in graph.nodes if n.op == "BatchNorm2d"]:
        reason = _why_not(graph, bn)
        if reason:
            out.skip(bn.name, reason)
            continue
        producer = graph.node(bn.inputs[0])
        _fold(graph, producer, bn)
        graph.replace_uses(bn.name, producer.name)
        graph.remove_node(bn.name)
        still_used = param_users(graph)
        for key in bn.params.values():
            if key not in still_used:
                del graph.params[key]
        out.did(f"folded {bn.name} into {producer.name}")
    return out


def _why_not(graph: Graph, bn: Node) -> str | None:
    if graph.training:
        return "the graph is built for training: BatchNorm uses batch statistics"
    if bn.name in graph.outputs:
        return "the BatchNorm is a graph output: folding would rename the output"
    if bn.inputs[0] in graph.inputs:
        return "it normalises a graph input: there is no layer to fold into"
    producer = graph.node(bn.inputs[0])
    if producer.op not in FOLDABLE:
        return f"it follows {producer.op}, not one of {', '.join(FOLDABLE)}"
    reason = sole_consumer(graph, producer, graph.users()) or owns_params(graph, producer, param_users(graph))
    if reason:
        return reason
    dtypes = {graph.params[k].dtype for k in [*producer.params.values(), *bn.params.values()]}
    if any(not np.issubdtype(d, np.floating) for d in dtypes):
        return f"parameters of dtype {sorted(map(str, dtypes))} cannot be folded exactly"
    return None


def _fold(graph: Graph, producer: Node, bn: Node) -> None:
    p = {role: graph.params[key].astype(np.float64) for role, key in bn.params.items()}
    scale = p["weight"] / np.sqrt(p["running_var"] + bn.attrs["eps"])
    bias = bias_of(graph, producer, scale.size)
    scale_output_channels(graph, producer, scale)
    set_bias(graph, producer, (bias - p["running_mean"]) * scale + p["bias"])
