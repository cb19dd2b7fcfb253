"""LayerNorm: each sample normalised over its trailing axes from ``axis`` on, then scaled and
shifted element-wise (ONNX LayerNormalization; ConvNeXt's channels-last norm between Transposes)."""

from __future__ import annotations

import math

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, onnx_table

LAYER_NORM_OPSET = 17  # ONNX LayerNormalization


def positive_eps(op: Op, node: str, attrs: dict) -> float:
    return op.real(node, "eps", attrs["eps"], lambda v: 0 < v < math.inf, "positive")


@register
class LayerNorm(Op):
    """Statistics per sample over axes ``axis`` .. last; ``weight`` and ``bias`` have those axes' shape."""

    name = "LayerNorm"
    defaults = {"axis": -1, "eps": 1e-5, "bias": True}

    def check(self, node, attrs, inputs):
        return {"axis": self.sample_axis(node, "axis", attrs["axis"], inputs[0].rank),
                "eps": positive_eps(self, node, attrs), "bias": bool(attrs["bias"])}

    def param_specs(self, attrs, inputs):
        shape = tuple(inputs[0].shape[attrs["axis"]:])
        return [ParamSpec("weight", shape, "ones")] + ([ParamSpec("bias", shape, "zeros")] if attrs["bias"] else [])

    def macs(self, attrs, inputs, output):
        """One multiply-add per element for the affine step (statistics not counted, as for BatchNorm)."""
        return output.per_sample()


# -- ONNX --------------------------------------------------------------------------------

def _export(ex, node, spec):
    """LayerNormalization from opset 17; before it, the ReduceMean form PyTorch writes."""
    if ex.opset >= LAYER_NORM_OPSET:
        ex.export_table(node, spec)
        return
    name, x = node.name, node.inputs[0]
    axes = list(range(node.attrs["axis"], ex.type(x).rank))

    def add(op_type, inputs, suffix, **attrs):
        return ex.add_node(op_type, inputs, [f"{name}/{suffix}"], f"{name}/{suffix}", **attrs)

    centred = add("Sub", [x, add("ReduceMean", [x], "mean", axes=axes)], "centred")
    var = add("ReduceMean", [add("Mul", [centred, centred], "square")], "var", axes=axes)
    std = add("Sqrt", [add("Add", [var, ex.initializer(f"{name}/eps", node.attrs["eps"])], "var_eps")], "std")
    normalised = add("Div", [centred, std], "normalised")
    if "bias" not in node.params:
        ex.add_node("Mul", [normalised, ex.param(node.params["weight"])], [name], name)
        return
    scaled = add("Mul", [normalised, ex.param(node.params["weight"])], "scaled")
    ex.add_node("Add", [scaled, ex.param(node.params["bias"])], [name], name)


ONNX = onnx_table(OnnxOp("LayerNorm", "LayerNormalization", (
    OnnxAttr("axis", "axis", default=-1),
    OnnxAttr("eps", "epsilon", load=as_float, default=1e-5),
), ("weight", "bias"), ignore=("stash_type",), derive=lambda attrs, params, types: {"bias": "bias" in params},
    export=_export))
