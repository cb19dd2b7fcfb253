"""Recompose activations that exporters write as several nodes, so epilogues can fuse them:
``x * sigmoid(x)`` becomes SiLU, ``x * hardsigmoid(x)`` (alpha 1/6: PyTorch's Hardswish before
opset 14) HardSwish, and ``0.5 * x * (1 + erf(x / sqrt 2))`` (PyTorch's GELU before ONNX Gelu; the
importer reads ``x / c`` as ``x * (1/c)``) GELU. The Mul that ends the pattern takes the
activation's place and name; the absorbed nodes must feed nothing else."""

from __future__ import annotations

import math

from cnngraph.ir import Graph, Node
from cnngraph.passes import Outcome, PassContext, graph_pass

Match = tuple[str, list[Node], str, dict]  # (input value, absorbed nodes, op, attributes)


def _producer(graph: Graph, value: str, op: str) -> Node | None:
    if value in graph.inputs:
        return None
    node = graph.node(value)
    return node if node.op == op else None


def _scalar(graph: Graph, value: str, want: float) -> bool:
    """Whether ``value`` is a one-element Constant equal to ``want`` (to float32 precision)."""
    node = _producer(graph, value, "Constant")
    if node is None:
        return False
    array = graph.params[node.params["value"]]
    return array.size == 1 and math.isclose(float(array.reshape(())), want, rel_tol=1e-6)


def _splits(graph: Graph, node: Node, op: str) -> list[tuple[str, Node]]:
    """A binary node's (other input, producer of ``op``) pairs: one per side an ``op`` produces."""
    if len(node.inputs) != 2:
        return []
    pairs = [(other, _producer(graph, mine, op)) for mine, other in (node.inputs, node.inputs[::-1])]
    return [(other, found) for other, found in pairs if found is not None]


def _split(graph: Graph, node: Node, op: str) -> tuple[str, Node] | None:
    """The first of ``_splits``, for patterns whose other input cannot be an ``op`` too."""
    return next(iter(_splits(graph, node, op)), None)


def _silu(graph: Graph, mul: Node) -> Match | None:
    found = _split(graph, mul, "Sigmoid")
    if found and found[1].inputs[0] == found[0]:
        return found[0], [found[1]], "SiLU", {}
    return None


def _hard_swish(graph: Graph, mul: Node) -> Match | None:
    """x * hardsigmoid(x) with alpha 1/6 and beta 1/2: PyTorch's Hardswish before opset 14."""
    found = _split(graph, mul, "HardSigmoid")
    if not found or found[1].inputs[0] != found[0]:
        return None
    attrs = found[1].attrs
    if math.isclose(attrs["alpha"], 1 / 6, rel_tol=1e-6) and math.isclose(attrs["beta"], 0.5, rel_tol=1e-6):
        return found[0], [found[1]], "HardSwish", {}
    return None


def _gelu(graph: Graph, mul: Node) -> Match | None:
    """mul = (x * (1 + erf(x * 1/sqrt 2))) * 0.5."""
    half = _split(graph, mul, "Mul")
    if not half or not _scalar(graph, half[0], 0.5):
        return None
    product = half[1]
    for x, add in _splits(graph, product, "Add"):  # x may be an Add too (a bias before the GELU)
        one = _split(graph, add, "Erf")
        if not one or not _scalar(graph, one[0], 1.0):
            continue
        erf = one[1]
        scaled = _producer(graph, erf.inputs[0], "Mul")
        if scaled is None or x not in scaled.inputs:
            continue
        if _scalar(graph, scaled.inputs[scaled.inputs[0] == x], math.sqrt(0.5)):
            return x, [product, add, erf, scaled], "GELU", {"approximate": "none"}
    return None


def _blocked(graph: Graph, absorbed: list[Node], users: dict[str, list[Node]]) -> str | None:
    for node in absorbed:
        if node.name in graph.outputs:
            return f"'{node.name}' is a graph output"
        if len(users[node.name]) != 1:
            return f"'{node.name}' has {len(users[node.name])} consumers"
    return None


@graph_pass("activation_patterns")
def activation_patterns(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    for mul in [n for n in graph.nodes if n.op == "Mul"]:
        if not graph.has_value(mul.name):  # absorbed by an earlier match
            continue
        match = _silu(graph, mul) or _hard_swish(graph, mul) or _gelu(graph, mul)
        if match is None:
            continue
        x, absorbed, op, attrs = match
        reason = _blocked(graph, absorbed, graph.users())
        if reason:
            out.skip(mul.name, f"{op} pattern: {reason}")
            continue
        for node in absorbed:
            graph.remove_node(node.name)
        mul.op, mul.inputs, mul.attrs, mul.params = op, [x], attrs, {}
        out.did(f"recomposed {mul.name} and {', '.join(n.name for n in absorbed)} into {op}")
    return out
