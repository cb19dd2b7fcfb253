"""Activations: element-wise functions and the softmax family. Same type out as in, no parameters."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, decomposed, onnx_table


class _Activation(Op):
    """An element-wise activation: fusable into a conv/linear epilogue and safe to run in place."""

    activation = True
    in_place = True


@register
class ReLU(_Activation):
    """max(x, 0)."""

    name = "ReLU"


class _Alpha(_Activation):
    """An activation with one real ``alpha`` (the slope or scale of its negative side)."""

    def check(self, node, attrs, inputs):
        return {**attrs, "alpha": self.real(node, "alpha", attrs["alpha"])}


@register
class LeakyReLU(_Alpha):
    """x for x >= 0, alpha * x below."""

    name = "LeakyReLU"
    defaults = {"alpha": 0.01}


@register
class ELU(_Alpha):
    """x for x > 0, alpha * (exp(x) - 1) below."""

    name = "ELU"
    defaults = {"alpha": 1.0}


@register
class Clip(_Activation):
    """Clamp into [min, max]; the defaults make it ReLU6 (MobileNet)."""

    name = "Clip"
    defaults = {"min": 0.0, "max": 6.0}

    def check(self, node, attrs, inputs):
        lo, hi = (self.real(node, k, attrs[k]) for k in ("min", "max"))
        if lo > hi:
            raise self.attr_error(node, f"min={lo} is larger than max={hi}")
        return {**attrs, "min": lo, "max": hi}


@register
class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""

    name = "Sigmoid"


@register
class Tanh(_Activation):
    name = "Tanh"


class _SoftmaxBase(Op):
    """Normalises along one per-sample ``axis`` (negative counts from the end)."""

    defaults = {"axis": 1}

    def check(self, node, attrs, inputs):
        return {**attrs, "axis": self.sample_axis(node, "axis", attrs["axis"], inputs[0].rank)}


@register
class Softmax(_SoftmaxBase):
    name = "Softmax"


@register
class LogSoftmax(_SoftmaxBase):
    """log(softmax(x)), computed without forming softmax, for classifier losses."""

    name = "LogSoftmax"


# -- smooth and hard activations of modern CNNs (MobileNetV3, EfficientNet, ConvNeXt) -------------

@register
class HardSigmoid(_Activation):
    """max(0, min(1, alpha * x + beta)), ONNX's defaults; PyTorch's Hardsigmoid is alpha = 1/6."""

    name = "HardSigmoid"
    defaults = {"alpha": 0.2, "beta": 0.5}

    def check(self, node, attrs, inputs):
        return {**attrs, **{k: self.real(node, k, attrs[k]) for k in ("alpha", "beta")}}


@register
class HardSwish(_Activation):
    """x * max(0, min(1, x / 6 + 1 / 2)) (MobileNetV3)."""

    name = "HardSwish"


@register
class SiLU(_Activation):
    """x * sigmoid(x), also called Swish (EfficientNet)."""

    name = "SiLU"


GELU_APPROXIMATIONS = ("none", "tanh")


@register
class GELU(_Activation):
    """x * Phi(x), exact (erf) or by its tanh approximation, as ONNX Gelu's ``approximate``."""

    name = "GELU"
    defaults = {"approximate": "none"}

    def check(self, node, attrs, inputs):
        if attrs["approximate"] not in GELU_APPROXIMATIONS:
            raise self.attr_error(node, f"approximate must be one of {GELU_APPROXIMATIONS}, "
                                        f"got {attrs['approximate']!r}")
        return attrs


@register
class Mish(_Activation):
    """x * tanh(softplus(x))."""

    name = "Mish"


SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875  # ONNX's float32 defaults


@register
class Selu(_Activation):
    """gamma * (x for x > 0, alpha * (exp(x) - 1) below): self-normalising."""

    name = "Selu"
    defaults = {"alpha": SELU_ALPHA, "gamma": SELU_GAMMA}

    def check(self, node, attrs, inputs):
        return {**attrs, **{k: self.real(node, k, attrs[k]) for k in ("alpha", "gamma")}}


@register
class Softplus(_Activation):
    """log(1 + exp(x))."""

    name = "Softplus"


@register
class Softsign(_Activation):
    """x / (1 + |x|)."""

    name = "Softsign"


# -- ONNX --------------------------------------------------------------------------------

F32_MAX = float(np.finfo(np.float32).max)


def _bound(value) -> float:
    """ONNX Clip bounds may be infinite (absent); the IR's are finite: the float32 range stands in."""
    return as_float(np.clip(float(value), -F32_MAX, F32_MAX))


def _softmax_load(ctx, node, spec):
    """Before opset 13 Softmax normalised over all axes from ``axis`` on (default 1) at once:
    the same as one axis only when it is the last, else a flatten-softmax-reshape."""
    shape = ctx.type(node, 0).shape
    if node.opset >= 13:
        return ctx.import_table(node, spec)
    axis = node.attrs.get("axis", 1) % len(shape)
    if axis == len(shape) - 1:
        return ctx.import_table(node, spec, axis=axis)
    if axis == 0:
        raise ctx.fail(node, f"axis {axis} normalises across the batch; supported: axes 1 to {len(shape) - 1}")
    flat = (math.prod(shape[1:axis]), math.prod(shape[axis:]))
    y = ctx.emit(node, "Reshape", [ctx.value(node, 0)], {"shape": flat}, output="flat")
    y = ctx.emit(node, spec.ir, [y], {"axis": 2}, output=spec.ir.lower())
    ctx.emit(node, "Reshape", [y], {"shape": shape[1:]})


SQRT_HALF, SQRT_2_OVER_PI, GELU_CUBIC = math.sqrt(0.5), math.sqrt(2 / math.pi), 0.044715
_GELU = {  # 0.5 * x * (1 + erf(x / sqrt 2)), and with tanh(sqrt(2/pi) * (x + 0.044715 x^3)) for erf
    "none": (("Mul", ("x", SQRT_HALF)), ("Erf", (0,)), ("Add", (1, 1.0)), ("Mul", ("x", 2)), ("Mul", (3, 0.5))),
    "tanh": (("Mul", ("x", "x")), ("Mul", (0, GELU_CUBIC)), ("Add", (1, 1.0)), ("Mul", ("x", 2)),
             ("Mul", (3, SQRT_2_OVER_PI)), ("Tanh", (4,)), ("Add", (5, 1.0)), ("Mul", ("x", 6)), ("Mul", (7, 0.5))),
}
GELU_OPSET = 20  # ONNX Gelu


def _gelu_export(ex, node, spec):
    """Gelu from opset 20; the decomposition PyTorch writes before it."""
    decomposed(_GELU[node.attrs["approximate"]], since=GELU_OPSET)(ex, node, spec)


def _swish_load(ctx, node):
    """ONNX Swish (opset 24) is x * sigmoid(alpha * x): SiLU where alpha is 1."""
    alpha = node.attrs.get("alpha", 1.0)
    if alpha != 1.0:
        raise ctx.fail(node, f"alpha={alpha}; supported: alpha=1 (SiLU)")
    ctx.emit(node, "SiLU", [ctx.value(node, 0)])


AXIS = OnnxAttr("axis", "axis", default=-1)
ALPHA = OnnxAttr("alpha", "alpha", load=as_float)
ONNX = onnx_table(
    OnnxOp("ReLU", "Relu"),
    OnnxOp("LeakyReLU", "LeakyRelu", (replace(ALPHA, default=0.01),)),
    OnnxOp("ELU", "Elu", (replace(ALPHA, default=1.0),)),
    OnnxOp("Clip", "Clip", (
        OnnxAttr("min", "min", load=_bound, default=-math.inf, input=1, since=11, dtype="float"),
        OnnxAttr("max", "max", load=_bound, default=math.inf, input=2, since=11, dtype="float"),
    )),
    OnnxOp("Sigmoid", "Sigmoid"),
    OnnxOp("Tanh", "Tanh"),
    OnnxOp("Softmax", "Softmax", (AXIS,), load=_softmax_load),
    OnnxOp("LogSoftmax", "LogSoftmax", (AXIS,), load=_softmax_load),
    OnnxOp("HardSigmoid", "HardSigmoid", (replace(ALPHA, default=0.2), OnnxAttr("beta", "beta", load=as_float,
                                                                                 default=0.5))),
    OnnxOp("HardSwish", "HardSwish",
           export=decomposed((("HardSigmoid", ("x",), {"alpha": 1 / 6}), ("Mul", ("x", 0))), since=14)),
    OnnxOp("SiLU", None, export=decomposed((("Sigmoid", ("x",)), ("Mul", ("x", 0))))),
    OnnxOp("GELU", "Gelu", (OnnxAttr("approximate", "approximate", default="none"),), export=_gelu_export),
    OnnxOp("Mish", "Mish", export=decomposed((("Softplus", ("x",)), ("Tanh", (0,)), ("Mul", ("x", 1))), since=18)),
    OnnxOp("Selu", "Selu", (replace(ALPHA, default=as_float(SELU_ALPHA)),
                            OnnxAttr("gamma", "gamma", load=as_float, default=as_float(SELU_GAMMA)))),
    OnnxOp("Softplus", "Softplus"),
    OnnxOp("Softsign", "Softsign"),
    imports={"Swish": _swish_load},
)
