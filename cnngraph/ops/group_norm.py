"""GroupNorm and InstanceNorm: each sample normalised per group of channels (over the group's
channels and all positions), then scaled and shifted per channel. InstanceNorm is GroupNorm with
one channel per group. torch's state_dict roles: ``weight`` and ``bias``, one per channel."""

from __future__ import annotations

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, fmt_shape
from cnngraph.ops.layer_norm import positive_eps
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, onnx_table

GROUP_NORM_PER_CHANNEL_OPSET = 21  # GroupNormalization's scale and bias were per group in opsets 18 to 20


class _ChannelNorm(Op):
    defaults = {"eps": 1e-5}
    min_rank = 2

    def check(self, node, attrs, inputs):
        t = inputs[0]
        if t.rank < self.min_rank:
            raise self.error(node, f"expects an input of rank {self.min_rank} or more (N, C, ...), "
                                   f"got shape {fmt_shape(t.shape)}")
        return {**attrs, "eps": positive_eps(self, node, attrs)}

    def param_specs(self, attrs, inputs):
        c = (inputs[0].shape[1],)
        return [ParamSpec("weight", c, "ones"), ParamSpec("bias", c, "zeros")]

    def macs(self, attrs, inputs, output):
        """One multiply-add per element for the affine step."""
        return output.per_sample()


@register
class GroupNorm(_ChannelNorm):
    name = "GroupNorm"
    required = ("num_groups",)

    def check(self, node, attrs, inputs):
        checked = super().check(node, attrs, inputs)
        groups, channels = self.ints(node, "num_groups", attrs["num_groups"], 1, 1)[0], inputs[0].shape[1]
        if channels % groups:
            raise self.attr_error(node, f"num_groups={groups} does not divide the {channels} channels")
        return {**checked, "num_groups": groups}


@register
class InstanceNorm(_ChannelNorm):
    """Statistics per sample and channel over the positions (style transfer, some GAN generators)."""

    name = "InstanceNorm"
    min_rank = 3


# -- ONNX --------------------------------------------------------------------------------

EPS = OnnxAttr("eps", "epsilon", load=as_float, default=1e-5)


def _group_export(ex, node, spec):
    """GroupNormalization with per-channel scale from opset 21; before, the form PyTorch writes:
    InstanceNormalization over (N, groups, -1), then the per-channel affine step."""
    if ex.opset >= GROUP_NORM_PER_CHANNEL_OPSET:
        ex.export_table(node, spec)
        return
    name, x, groups = node.name, node.inputs[0], node.attrs["num_groups"]
    shape, rank = ex.type(x).shape, ex.type(x).rank
    grouped = ex.add_node("Reshape", [x, ex.initializer(f"{name}/grouped_shape", np.array([0, groups, -1]))],
                          [f"{name}/grouped"], f"{name}/grouped")
    ones, zeros = np.ones(groups, np.float32), np.zeros(groups, np.float32)
    normed = ex.add_node("InstanceNormalization", [grouped, ex.initializer(f"{name}/ones", ones),
                                                   ex.initializer(f"{name}/zeros", zeros)],
                         [f"{name}/normalised"], f"{name}/normalised", epsilon=node.attrs["eps"])
    back = ex.add_node("Reshape", [normed, ex.initializer(f"{name}/shape", np.array([0, *shape[1:]]))],
                       [f"{name}/ungrouped"], f"{name}/ungrouped")
    per_channel = (-1, *[1] * (rank - 2))
    weight = ex.initializer(f"{name}/weight", ex.graph.params[node.params["weight"]].reshape(per_channel))
    bias = ex.initializer(f"{name}/bias", ex.graph.params[node.params["bias"]].reshape(per_channel))
    scaled = ex.add_node("Mul", [back, weight], [f"{name}/scaled"], f"{name}/scaled")
    ex.add_node("Add", [scaled, bias], [name], name)


def _group_load(ctx, node, spec):
    """Opsets 18 to 20 scale and shift per group: each group's value repeats over its channels."""
    if node.opset >= GROUP_NORM_PER_CHANNEL_OPSET:
        return ctx.import_table(node, spec)
    groups = node.attrs["num_groups"]
    per = ctx.type(node, 0).shape[1] // groups
    params = {role: np.repeat(ctx.constant(node, k), per) for k, role in ((1, "weight"), (2, "bias"))}
    attrs = {"num_groups": groups, "eps": as_float(node.attrs.get("epsilon", 1e-5))}
    ctx.emit(node, "GroupNorm", [ctx.value(node, 0)], attrs, params)


ONNX = onnx_table(
    OnnxOp("GroupNorm", "GroupNormalization", (OnnxAttr("num_groups", "num_groups"), EPS), ("weight", "bias"),
           ignore=("stash_type",), export=_group_export, load=_group_load),
    OnnxOp("InstanceNorm", "InstanceNormalization", (EPS,), ("weight", "bias")),
)
