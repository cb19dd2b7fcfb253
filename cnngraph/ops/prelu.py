"""PReLU: a leaky ReLU whose negative slope is learnt, one per channel or one for all (torch's
``num_parameters``); ONNX PRelu's slope broadcasts the same way once shaped (C, 1, 1)."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, fmt_shape
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table


@register
class PReLU(Op):
    """x for x >= 0, weight[c] * x below; the weight is the state_dict's ``<layer>.weight``.

    Element-wise, so in place; not an epilogue activation, since fused epilogues carry no parameters.
    """

    name = "PReLU"
    defaults = {"num_parameters": 1}
    in_place = True

    def check(self, node, attrs, inputs):
        t = inputs[0]
        if t.rank < 2:
            raise self.error(node, f"expects an (N, C, ...) input, got shape {fmt_shape(t.shape)}")
        n = self.ints(node, "num_parameters", attrs["num_parameters"], 1, 1)[0]
        if n not in (1, t.shape[1]):
            raise self.attr_error(node, f"num_parameters={n} must be 1 or the {t.shape[1]} channels")
        return {"num_parameters": n}

    def param_specs(self, attrs, inputs):
        return [ParamSpec("weight", (attrs["num_parameters"],), "constant=0.25")]


# -- ONNX --------------------------------------------------------------------------------

def _export(ex, node, spec):
    """The slope shaped (C, 1, ..., 1) so ONNX's trailing-axis broadcast lines it up with the channels."""
    weight, rank = ex.graph.params[node.params["weight"]], ex.type(node.inputs[0]).rank
    slope = ex.initializer(f"{node.name}/slope", weight.reshape(-1, *[1] * (rank - 2)))
    ex.add_node("PRelu", [node.inputs[0], slope], [node.name], node.name)


def _load(ctx, node, spec):
    """One slope for all, or one per channel (shaped (C, 1, ..., 1), leading 1s allowed); a slope along
    another axis has no IR form."""
    x, slope = ctx.type(node, 0), ctx.constant(node, 1)
    channels = x.shape[1]
    first = next((i for i, d in enumerate(slope.shape) if d != 1), slope.ndim)  # leading 1s broadcast anyway
    if slope.size == 1:
        weight = slope.reshape(1)
    elif slope.shape[first:] == (channels, *[1] * (x.rank - 2)):
        weight = slope.reshape(channels)
    else:
        raise ctx.fail(node, f"slope of shape {slope.shape} for input {fmt_shape(x.shape)}; supported: one slope, "
                             f"or one per channel shaped ({channels}, 1, ...)")
    ctx.emit(node, "PReLU", [ctx.value(node, 0)], {"num_parameters": weight.size}, {"weight": weight})


ONNX = onnx_table(OnnxOp("PReLU", "PRelu", params=("weight",), export=_export, load=_load))
