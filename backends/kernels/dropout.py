"""Inverted dropout (PyTorch's): scaling at training time makes inference the identity."""

from __future__ import annotations

from cnngraph.backends.kernels import kernel


@kernel("Dropout")
def dropout(xp, inputs, params, attrs, ctx):
    x, p = inputs[0], attrs["p"]
    if not ctx.training:
        return x
    keep = xp.asarray(ctx.rng.random(x.shape) >= p)  # the mask comes from numpy's generator on any backend
    return x * keep / (1 - p)
