"""Activations: element-wise functions and the softmax family. Same type out as in, no parameters."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import Op


@register
class ReLU(Op):
    """max(x, 0)."""

    name = "ReLU"


class _Alpha(Op):
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
class Clip(Op):
    """Clamp into [min, max]; the defaults make it ReLU6 (MobileNet)."""

    name = "Clip"
    defaults = {"min": 0.0, "max": 6.0}

    def check(self, node, attrs, inputs):
        lo, hi = (self.real(node, k, attrs[k]) for k in ("min", "max"))
        if lo > hi:
            raise self.attr_error(node, f"min={lo} is larger than max={hi}")
        return {**attrs, "min": lo, "max": hi}


@register
class Sigmoid(Op):
    """1 / (1 + exp(-x))."""

    name = "Sigmoid"


@register
class Tanh(Op):
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
