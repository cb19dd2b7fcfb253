"""Fused ops that passes create: conv/linear + bias (+ residual) + activation in one node.

They never come from the DSL: ``passes/activation_fusion.py`` and ``passes/residual_fusion.py``
build them from Conv2d/Linear, Add and an activation, and the executors run them in one pass
over the output. The activation is stored by op name with its own attributes, so every op with
the ``activation`` trait can be fused and its schema validates the fused attributes.
"""

from __future__ import annotations

from dataclasses import replace

from cnngraph.ops import get_op, ops_with, register
from cnngraph.ops.base import fmt_shape
from cnngraph.ops.conv import Conv2d
from cnngraph.ops.linear import Linear
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType

FUSED_DEFAULTS = {"activation": None, "activation_attrs": {}, "residual": False}


class _Fused:
    """Mixin: an optional residual input (added before the activation) and an optional activation."""

    def check(self, node, attrs, inputs):
        a = super().check(node, {k: v for k, v in attrs.items() if k not in FUSED_DEFAULTS}, inputs[:1])
        a["residual"] = bool(attrs["residual"])
        if len(inputs) != 1 + a["residual"]:
            raise self.error(node, f"residual={a['residual']} needs {1 + a['residual']} inputs, got {len(inputs)}")
        act, fusable = attrs["activation"], ops_with("activation")
        if act is not None and act not in fusable:
            raise self.attr_error(node, f"activation must be one of {fusable} or None, got {act!r}")
        out = super().infer(node, a, inputs[:1])
        a["activation"] = act
        a["activation_attrs"] = get_op(act).normalize(node, dict(attrs["activation_attrs"]), [out]) if act else {}
        if a["residual"] and inputs[1].shape != out.shape:
            raise self.error(node, f"residual input {fmt_shape(inputs[1].shape)} does not match the output "
                                   f"{fmt_shape(out.shape)}")
        return a

    def infer(self, node, attrs, inputs) -> TensorType:
        return super().infer(node, attrs, inputs[:1])

    def param_specs(self, attrs, inputs):
        return super().param_specs(attrs, inputs[:1])

    def macs(self, attrs, inputs, output):
        return super().macs(attrs, inputs[:1], output)

    def window(self, attrs, inputs):
        return super().window(attrs, inputs[:1])

    def describe(self, attrs) -> str:
        parts = [super().describe({k: v for k, v in attrs.items() if k not in FUSED_DEFAULTS})]
        if attrs["residual"]:
            parts.append("+residual")
        if attrs["activation"]:
            act = get_op(attrs["activation"]).describe(attrs["activation_attrs"])
            parts.append(f"act={attrs['activation']}" + (f"({act})" if act else ""))
        return ", ".join(p for p in parts if p)


@register
class FusedConv2d(_Fused, Conv2d):
    """Conv2d, then + residual, then activation: ResNet's conv-bn(-add)-relu after BN folding."""

    name = "FusedConv2d"
    arity = (1, 2)
    defaults = {**Conv2d.defaults, **FUSED_DEFAULTS}


@register
class FusedLinear(_Fused, Linear):
    """Linear, then + residual, then activation."""

    name = "FusedLinear"
    arity = (1, 2)
    defaults = {**Linear.defaults, **FUSED_DEFAULTS}


# -- ONNX --------------------------------------------------------------------------------

def _export(ex, node, spec):
    """Standard ONNX has no fused ops: the base op, then an Add of the residual, then the activation,
    each exported through its own mapping; the last part writes the node's output. Each part is a copy of
    ``node`` (``dataclasses.replace``), so this module needs no IR import (the IR imports the ops)."""
    a = node.attrs
    base = {k: v for k, v in a.items() if k not in FUSED_DEFAULTS}
    parts = [(node.op.removeprefix("Fused"), node.inputs[:1], base, node.params)]
    if a["residual"]:
        parts.append(("Add", node.inputs[1:], {}, {}))
    if a["activation"]:
        parts.append((a["activation"], [], a["activation_attrs"], {}))
    value = []
    for i, (op, inputs, attrs, params) in enumerate(parts):
        name = node.name if i == len(parts) - 1 else f"{node.name}/{op.lower()}"
        value = [ex.emit(replace(node, name=name, op=op, inputs=value + inputs, attrs=attrs, params=params))]


ONNX = onnx_table(OnnxOp("FusedConv2d", None, export=_export), OnnxOp("FusedLinear", None, export=_export))
