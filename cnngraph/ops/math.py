"""Element-wise math that exported models use between layers: Exp, Log, Neg, Abs, Sqrt, Reciprocal
and Erf (one input, same type out), and Pow, Max, Min (broadcast like Add)."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.elementwise import _Broadcasting
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table


class _Unary(Op):
    """Element-wise: its output may overwrite a dying input. Not an activation: epilogues do not fuse it."""

    in_place = True


UNARY = ("Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Erf")
for _name in UNARY:
    register(type(_name, (_Unary,), {"name": _name, "__doc__": f"ONNX {_name}, element-wise."}))


@register
class Pow(_Broadcasting):
    """a ** b, broadcast (x ** 2 and x ** 0.5 in exported normalisations)."""

    name = "Pow"
    arity = (2, 2)
    verb = "raise to the power"


@register
class Max(_Broadcasting):
    """Element-wise maximum of one or more tensors (ONNX's variadic Max)."""

    name = "Max"
    arity = (1, 64)
    verb = "take the maximum of"


@register
class Min(_Broadcasting):
    """Element-wise minimum of one or more tensors (ONNX's variadic Min)."""

    name = "Min"
    arity = (1, 64)
    verb = "take the minimum of"


ONNX = onnx_table(
    *(OnnxOp(name, name) for name in UNARY),
    OnnxOp("Pow", "Pow", data=None),
    OnnxOp("Max", "Max", data=None),
    OnnxOp("Min", "Min", data=None),
)
