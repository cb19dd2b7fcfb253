"""BatchNorm2d and LRN: per-channel and cross-channel normalisation."""

from __future__ import annotations

import math

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, fmt_shape
from cnngraph.ops.onnx_mapping import TRAINING, OnnxAttr, OnnxOp, as_float, onnx_table



@register
class BatchNorm2d(Op):
    """Batch normalisation over axis 1 of (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W): PyTorch's
    BatchNorm1d, 2d and 3d in one op, with their semantics and state_dict roles.

    The running statistics are buffers (not trainable); in training the kernel updates them in place.
    """

    name = "BatchNorm2d"
    defaults = {"eps": 1e-5, "momentum": 0.1}

    def check(self, node, attrs, inputs):
        t = inputs[0]
        if not 2 <= t.rank <= 5:
            raise self.error(node, f"expects an (N, C) to (N, C, D, H, W) input (rank 2 to 5), got shape "
                                   f"{fmt_shape(t.shape)}")
        return {
            "eps": self.real(node, "eps", attrs["eps"], lambda v: 0 < v < math.inf, "positive"),
            "momentum": self.real(node, "momentum", attrs["momentum"], lambda v: 0 <= v <= 1, "in [0, 1]"),
        }

    def param_specs(self, attrs, inputs):
        c = (inputs[0].shape[1],)
        return [
            ParamSpec("weight", c, "ones"),
            ParamSpec("bias", c, "zeros"),
            ParamSpec("running_mean", c, "zeros", trainable=False),
            ParamSpec("running_var", c, "ones", trainable=False),
        ]

    def macs(self, attrs, inputs, output):
        """One multiply-add per element: inference folds the statistics into a scale and a shift."""
        return output.per_sample()


@register
class LRN(Op):
    """Local response normalisation across channels (AlexNet), ONNX semantics.

    b_c = a_c / (k + alpha / size * sum of a_i^2 over i in [c - floor((size-1)/2), c + ceil((size-1)/2)])^beta.
    """

    name = "LRN"
    required = ("size",)
    defaults = {"alpha": 1e-4, "beta": 0.75, "k": 1.0}

    def check(self, node, attrs, inputs):
        self.image(node, inputs[0])
        return {
            "size": self.window_ints(node, "size", attrs["size"], 1)[0],
            **{key: self.real(node, key, attrs[key]) for key in ("alpha", "beta", "k")},
        }

    def macs(self, attrs, inputs, output):
        """``size`` multiply-adds per element for the windowed sum of squares."""
        return attrs["size"] * output.per_sample()

    def workspace(self, attrs, inputs, output):
        """The squares, padded by the window along channels, and their windowed sum."""
        _, c, h, w = inputs[0].shape
        return (c + attrs["size"] - 1) * h * w + 2 * c * h * w


# -- ONNX --------------------------------------------------------------------------------

def _batch_norm_export(ex, node, spec):
    """Training mode (opset 14+) needs the updated running statistics as outputs too."""
    extra = [f"{node.name}/running_mean", f"{node.name}/running_var"] if ex.training else []
    ex.export_table(node, spec, outputs=[node.name, *extra])


def _batch_norm_load(ctx, node, spec):
    """Before opset 14, training mode is told by the extra outputs (mean, var, saved mean, saved var)."""
    if not node.attrs.get("spatial", 1):
        raise ctx.fail(node, "spatial=0 (statistics per element, not per channel); supported: spatial=1")
    training = node.opset < 14 and len([o for o in node.outputs if o]) > 1
    ctx.import_table(node, spec, consumed=("spatial",), **({TRAINING: True} if training else {}))


ONNX = onnx_table(
    OnnxOp("BatchNorm2d", "BatchNormalization", (
        OnnxAttr("eps", "epsilon", load=as_float, default=1e-5),
        OnnxAttr("momentum", "momentum", save=lambda m: 1 - m, load=lambda m: as_float(1 - m), default=0.9),
        OnnxAttr(TRAINING, "training_mode", save=int, load=bool, default=0),
    ), ("weight", "bias", "running_mean", "running_var"), export=_batch_norm_export, load=_batch_norm_load),
    OnnxOp("LRN", "LRN", (
        OnnxAttr("size", "size"),
        OnnxAttr("alpha", "alpha", load=as_float, default=1e-4),
        OnnxAttr("beta", "beta", load=as_float, default=0.75),
        OnnxAttr("k", "bias", load=as_float, default=1.0),
    )),
)
