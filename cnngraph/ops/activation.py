"""Activations: element-wise functions and the softmax family. Same type out as in, no parameters."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, onnx_table


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
)
