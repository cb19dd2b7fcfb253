"""PReLU with its input and slope gradients."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.norm import _per_channel


def _slope(x, weight):
    """The (1,) or (C,) slope shaped to broadcast along axis 1 of ``x``."""
    return weight.reshape(_per_channel(x))


@kernel("PReLU")
def prelu(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return xp.where(x >= 0, x, x * _slope(x, params["weight"]))


@backward("PReLU", keeps=("inputs",))
def prelu_backward(xp, grad, saved, params, attrs):
    """d/dx is 1 or the slope; d/dslope sums x * grad over the negative positions sharing that slope."""
    x, weight = saved.inputs[0], params["weight"]
    negative = x < 0
    dx = xp.where(negative, grad * _slope(x, weight), grad)
    per_position = xp.where(negative, grad * x, 0)
    if weight.size == 1:
        dw = per_position.sum().reshape(1)
    else:
        dw = per_position.sum(axis=(0, *range(2, x.ndim)))
    return [dx], {"weight": dw}
