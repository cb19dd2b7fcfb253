"""Constant: the stored value, as is. Its value is a buffer, so it has no gradient to give."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("Constant")
def constant(xp, inputs, params, attrs, ctx):
    return params["value"]


@backward("Constant")
def constant_backward(xp, grad, saved, params, attrs):
    return [], {}
