"""Activation kernels, written to be overflow-free for any finite input, and their derivatives.

Each backward keeps the output where the derivative is a function of it (ReLU, sigmoid, tanh, the
softmaxes), otherwise the input; the output is usually kept by the next layer anyway, so it costs nothing.
"""

from __future__ import annotations

from cnngraph.backends.kernels import ANY_LAYOUT, backward, kernel


@kernel("ReLU", layouts=ANY_LAYOUT)
def relu(xp, inputs, params, attrs, ctx):
    return xp.maximum(inputs[0], 0)


@kernel("LeakyReLU", layouts=ANY_LAYOUT)
def leaky_relu(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return xp.where(x >= 0, x, x * attrs["alpha"])


@kernel("ELU", layouts=ANY_LAYOUT)
def elu(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return xp.where(x > 0, x, attrs["alpha"] * xp.expm1(xp.minimum(x, 0)))  # min: no exp of large x


@kernel("Clip", layouts=ANY_LAYOUT)
def clip(xp, inputs, params, attrs, ctx):
    return xp.clip(inputs[0], attrs["min"], attrs["max"])


@kernel("Sigmoid", layouts=ANY_LAYOUT)
def sigmoid(xp, inputs, params, attrs, ctx):
    """exp(-|x|) never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below."""
    x = inputs[0]
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


@kernel("Tanh", layouts=ANY_LAYOUT)
def tanh(xp, inputs, params, attrs, ctx):
    return xp.tanh(inputs[0])


def _shifted(x, axis):
    """x minus its maximum along ``axis``: exp of it is at most 1, so nothing overflows."""
    return x - x.max(axis=axis, keepdims=True)


@kernel("Softmax")
def softmax(xp, inputs, params, attrs, ctx):
    e = xp.exp(_shifted(inputs[0], attrs["axis"]))
    e /= e.sum(axis=attrs["axis"], keepdims=True)
    return e


@kernel("LogSoftmax")
def log_softmax(xp, inputs, params, attrs, ctx):
    s = _shifted(inputs[0], attrs["axis"])
    return s - xp.log(xp.exp(s).sum(axis=attrs["axis"], keepdims=True))


# -- backward: the element-wise derivative times the incoming gradient -----------------------------

@backward("ReLU", keeps=("output",))
def relu_backward(xp, grad, saved, params, attrs):
    return [xp.where(saved.output > 0, grad, 0)], {}


@backward("LeakyReLU", keeps=("inputs",))
def leaky_relu_backward(xp, grad, saved, params, attrs):
    return [xp.where(saved.inputs[0] >= 0, grad, grad * attrs["alpha"])], {}


@backward("ELU", keeps=("inputs",))
def elu_backward(xp, grad, saved, params, attrs):
    x = saved.inputs[0]
    return [xp.where(x > 0, grad, grad * attrs["alpha"] * xp.exp(xp.minimum(x, 0)))], {}


@backward("Clip", keeps=("inputs",))
def clip_backward(xp, grad, saved, params, attrs):
    """torch.clamp's rule: the gradient passes where min <= x <= max, bounds included."""
    x = saved.inputs[0]
    return [xp.where((x >= attrs["min"]) & (x <= attrs["max"]), grad, 0)], {}


@backward("Sigmoid", keeps=("output",))
def sigmoid_backward(xp, grad, saved, params, attrs):
    y = saved.output
    return [grad * y * (1 - y)], {}


@backward("Tanh", keeps=("output",))
def tanh_backward(xp, grad, saved, params, attrs):
    y = saved.output
    return [grad * (1 - y * y)], {}


@backward("Softmax", keeps=("output",))
def softmax_backward(xp, grad, saved, params, attrs):
    y = saved.output
    return [y * (grad - (grad * y).sum(axis=attrs["axis"], keepdims=True))], {}


@backward("LogSoftmax", keeps=("output",))
def log_softmax_backward(xp, grad, saved, params, attrs):
    return [grad - xp.exp(saved.output) * grad.sum(axis=attrs["axis"], keepdims=True)], {}
