"""GreaterOrEqual as 1.0 / 0.0 in its inputs' float type; a step function: nothing flows back."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("GreaterOrEqual")
def greater_or_equal(xp, inputs, params, attrs, ctx):
    a, b = inputs
    return (a >= b).astype(a.dtype)


@backward("GreaterOrEqual")
def greater_or_equal_backward(xp, grad, saved, params, attrs):
    return [None, None], {}
