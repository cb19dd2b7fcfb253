"""Add and Mul with numpy broadcasting; the symbolic batch "N" broadcasts only with "N" or 1."""

from __future__ import annotations

from typing import ClassVar

from cnngraph.ir import BATCH, TensorType
from cnngraph.ops import register
from cnngraph.ops.base import Op, fmt_shape


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
