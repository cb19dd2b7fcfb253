"""Add and Mul with numpy broadcasting; the symbolic batch "N" broadcasts only with "N" or 1."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op, fmt_shape
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import BATCH, TensorType


def _broadcast(shapes: list[tuple]) -> tuple | None:
    """numpy's rule over all shapes at once, or None when they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + s for s in shapes]):
        sizes = set(dims) - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class _Broadcasting(Op):
    """Shape inference shared by the element-wise joins."""

    verb: ClassVar[str] = ""
    broadcasts = True

    def infer(self, node, attrs, inputs):
        shape = _broadcast([t.shape for t in inputs])
        if shape is None or BATCH in shape[1:]:  # a batch landing off axis 0 means mismatched ranks
            listed = [fmt_shape(t.shape) for t in inputs]
            raise self.error(node, f"cannot {self.verb} shapes {', '.join(listed[:-1])} and {listed[-1]}")
        return TensorType(shape, inputs[0].dtype)


@register
class Add(_Broadcasting):
    """Sum of two or more tensors: residual joins, feature-pyramid sums."""

    name = "Add"
    arity = (2, 64)
    verb = "add"


@register
class Mul(_Broadcasting):
    """Product of two tensors, e.g. channel attention (N, C, 1, 1) * (N, C, H, W)."""

    name = "Mul"
    arity = (2, 2)
    verb = "multiply"

    def macs(self, attrs, inputs, output):
        """One multiply per output element."""
        return output.per_sample()


# -- ONNX --------------------------------------------------------------------------------

def _add_export(ex, node, spec):
    """ONNX Add is binary; three or more summands are a Sum."""
    ex.export_table(node, spec, op_type="Add" if len(node.inputs) == 2 else "Sum")


def _sum_load(ctx, node):
    values = [ctx.value(node, i) for i in range(len(node.inputs))]
    if len(values) == 1:
        return ctx.bind(node, values[0])
    return ctx.emit(node, "Add", values)


def _negated(ctx, node, i) -> str:
    """-input i: a negated constant, or the runtime value times -1."""
    if ctx.is_constant(node, i):
        return ctx.constant_value(node, -ctx.constant(node, i), f"neg{i}")
    return ctx.emit(node, "Mul", [ctx.value(node, i), ctx.constant_value(node, np.float32(-1), "minus_one")],
                    output=f"neg{i}")


def _sub_load(ctx, node):
    """a - b = a + (-b)."""
    ctx.emit(node, "Add", [ctx.value(node, 0), _negated(ctx, node, 1)])


def _div_load(ctx, node):
    """a / b = a * (1 / b): the reciprocal folded for a constant b, a Reciprocal node for a runtime one."""
    if not ctx.is_constant(node, 1):
        inverse = ctx.emit(node, "Reciprocal", [ctx.value(node, 1)], output="reciprocal")
        return ctx.emit(node, "Mul", [ctx.value(node, 0), inverse])
    divisor = ctx.constant(node, 1)
    if not np.issubdtype(divisor.dtype, np.floating):
        raise ctx.fail(node, f"divisor of type {divisor.dtype}; supported: float divisors")
    ctx.emit(node, "Mul", [ctx.value(node, 0), ctx.constant_value(node, 1 / divisor, "reciprocal")])


ONNX = onnx_table(
    OnnxOp("Add", "Add", data=None, export=_add_export),
    OnnxOp("Mul", "Mul", data=None),
    imports={"Sum": _sum_load, "Sub": _sub_load, "Div": _div_load},
)
