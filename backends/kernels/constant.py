"""Constant: the stored value, as is. A trainable one's gradient is the gradient of its output (its
consumers already summed their broadcasting away); a buffer has none to give."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("Constant")
def constant(xp, inputs, params, attrs, ctx):
    return params["value"]


@backward("Constant")
def constant_backward(xp, grad, saved, params, attrs):
    return [], ({"value": grad} if attrs["trainable"] else {})
