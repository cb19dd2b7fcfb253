"""A classifier's features as an L2-normalised embedding: DeepFace verifies with F7's normalised output.

``embedding_graph`` cuts a trained graph at a layer (by default the input of its last Linear layer,
Dropout skipped) and appends ``x / sqrt(sum(x^2) + eps)`` built from standard ops (Mul, ReduceSum, Add,
Sqrt, Reciprocal), so the embedding runs on any backend, trains and exports to ONNX like any graph.
"""

from __future__ import annotations

import numpy as np

from cnngraph.errors import GraphError
from cnngraph.ir import Graph
from cnngraph.subgraph import keep_outputs

EPS = 1e-12  # under the square root: an all-zero feature vector (every ReLU off) maps to 0, not NaN
OUTPUT = "embedding"


def default_layer(graph: Graph) -> str:
    """The features the classifier head reads: the input of the last Linear layer, before any Dropout."""
    heads = [n for n in graph.nodes if n.op == "Linear"]
    if not heads:
        raise GraphError(f"{graph.name} has no Linear layer; name the embedding layer (--embedding LAYER)")
    value = heads[-1].inputs[0]
    while value not in graph.inputs and graph.node(value).op == "Dropout":
        value = graph.node(value).inputs[0]
    return value


def embedding_graph(graph: Graph, layer: str | None = None) -> Graph:
    """A verified graph from ``graph``'s input to the L2-normalised (N, D) output of ``layer``, named 'embedding'.
    A graph that outputs the embedding already (one trained with an embedding loss) is returned as it is."""
    if graph.outputs == [OUTPUT]:
        return graph
    layer = layer or default_layer(graph)
    if not graph.has_value(layer) or layer in graph.inputs:
        raise GraphError(f"{graph.name} has no layer named '{layer}' to take an embedding from")
    cut = graph.copy()
    cut.outputs = [layer]
    g = keep_outputs(cut, [layer])
    features = layer
    if g.type_of(layer).rank != 2:
        features = g.append("embedding.flatten", "Flatten", [layer])
    eps = g.append_constant("embedding.eps", np.array([EPS], np.float32))
    square = g.append("embedding.square", "Mul", [features, features])
    total = g.append("embedding.sum", "ReduceSum", [square], axes=(1,), keepdims=True)
    norm = g.append("embedding.norm", "Sqrt", [g.append("embedding.add_eps", "Add", [total, eps])])
    g.append(OUTPUT, "Mul", [features, g.append("embedding.inverse", "Reciprocal", [norm])])
    g.outputs = [OUTPUT]
    g.name = f"{graph.name}_embedding"
    return g.verify()
