"""Transpose sinking: move layout Transposes down through element-wise ops until they meet their inverse.

PyTorch's channels-last code (ConvNeXt's ``permute`` -> Linear -> GELU -> Linear -> ``permute``) imports as
1x1 convolutions between Transposes, so every block moves its activations between layouts six times. A
Transpose commutes with an element-wise op: with a unary one (GELU, Erf, ReLU) as is, and with a binary
one whose other input is a Constant if that constant is permuted too (a (C,) bias on NHWC is a (C, 1, 1)
bias on NCHW). Two Transposes in a row compose into one, and disappear when the composition is the
identity. Afterwards the bias Adds sit right after their convolutions, where scale_folding takes them.

A Transpose is only moved when it is its value's only reader and the op below it is not a graph output
(the output's name and layout must stay), so no value is computed twice.
"""

from __future__ import annotations

import numpy as np

from cnngraph.ir import Graph, Node, TensorType
from cnngraph.ops import get_op
from cnngraph.ops.math import UNARY
from cnngraph.passes import Outcome, PassContext, graph_pass


@graph_pass("transpose_sinking")
def transpose_sinking(graph: Graph, ctx: PassContext) -> Outcome:
    out = Outcome()
    changed = True
    while changed:
        changed = False
        for node in [n for n in graph.nodes if n.op == "Transpose"]:
            if graph.has_value(node.name) and (_compose(graph, node, out) or _sink(graph, node, out)):
                changed = True
                break
    return out


def _compose(graph: Graph, node: Node, out: Outcome) -> bool:
    """Transpose of a Transpose: one Transpose, or none when they cancel."""
    first = graph.node(node.inputs[0]) if node.inputs[0] not in graph.inputs else None
    if first is None or first.op != "Transpose":
        return False
    perm = tuple(first.attrs["perm"][a] for a in node.attrs["perm"])
    if perm == tuple(range(len(perm))) and node.name not in graph.outputs:
        graph.replace_uses(node.name, first.inputs[0])
        graph.remove_node(node.name)
        out.did(f"cancelled {first.name} and {node.name}")
    else:
        node.inputs, node.attrs = [first.inputs[0]], {**node.attrs, "perm": perm}
        out.did(f"composed {first.name} into {node.name}")
    if not graph.users().get(first.name) and first.name not in graph.outputs:
        graph.remove_node(first.name)
    return True


def _sink(graph: Graph, node: Node, out: Outcome) -> bool:
    """Swap ``node`` with the element-wise op that is its only reader."""
    readers = graph.users().get(node.name, [])
    if len(readers) != 1 or node.name in graph.outputs:
        return False
    below = readers[0]
    constant = _permutable(graph, below, node)
    if below.name in graph.outputs or constant is False:
        return False
    source = graph.type_of(node.inputs[0])
    if constant is not None:
        _permute_constant(graph, below, constant, node.attrs["perm"])
    below.inputs = [node.inputs[0] if v == node.name else v for v in below.inputs]
    below.type = TensorType(source.shape, below.type.dtype)
    graph.replace_uses(below.name, node.name)
    node.inputs = [below.name]
    graph.nodes.remove(node)
    graph.nodes.insert(graph.nodes.index(below) + 1, node)
    out.did(f"moved {node.name} below {below.name}")
    return True


def _permutable(graph: Graph, below: Node, transpose: Node) -> str | None | bool:
    """None when ``below`` is a unary element-wise op; the Constant input's name when it is a binary one with
    a constant operand; False when the Transpose cannot move through it."""
    op = get_op(below.op)
    if below.params:
        return False
    if len(below.inputs) == 1 and (op.activation or below.op in UNARY):
        return None
    if len(below.inputs) != 2 or not op.broadcasts or below.inputs.count(transpose.name) != 1:
        return False
    other = below.inputs[1 - below.inputs.index(transpose.name)]
    if transpose.attrs["perm"][0] != 0:  # a constant is laid out against the per-sample axes only
        return False
    return other if other not in graph.inputs and graph.node(other).op == "Constant" else False


def _permute_constant(graph: Graph, below: Node, constant: str, perm: tuple[int, ...]) -> None:
    """Give ``below`` its own copy of ``constant`` laid out like the Transpose's input: right-aligned
    against the per-sample axes, padded to their rank, then moved by the inverse permutation."""
    const = graph.node(constant)
    value = graph.params[const.params["value"]]
    rank = len(perm) - 1  # per-sample axes; a constant has no batch axis, or a leading 1 for it
    if value.ndim > rank:
        padded = value.reshape(value.shape[-rank:])
    else:
        padded = value.reshape((1,) * (rank - value.ndim) + value.shape)
    inverse = np.argsort([a - 1 for a in perm[1:]])
    moved = np.ascontiguousarray(padded.transpose(inverse))
    name = _fresh(graph, f"{constant}/{below.name}")
    graph.params[f"{name}.value"] = moved
    graph.add_node(Node(name, "Constant", [], {**const.attrs, "shape": moved.shape}, {"value": f"{name}.value"},
                        TensorType(moved.shape, const.type.dtype)))
    graph.nodes.remove(graph.node(name))
    graph.nodes.insert(graph.nodes.index(below), graph.node(name))
    below.inputs = [name if v == constant else v for v in below.inputs]


def _fresh(graph: Graph, base: str) -> str:
    name, k = base, 0
    while graph.has_value(name):
        k += 1
        name = f"{base}_{k}"
    return name
