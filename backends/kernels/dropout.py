"""Inverted dropout (PyTorch's): scaling at training time makes inference the identity."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


def _masked(x, keep, p):
    """Kept elements scaled by 1 / (1 - p): the forward map, and (being linear) its own adjoint."""
    return x * keep / (1 - p)


@kernel("Dropout")
def dropout(xp, inputs, params, attrs, ctx):
    x, p = inputs[0], attrs["p"]
    if not ctx.training:
        return x
    keep = ctx.random(x.shape) >= p  # drawn on the device: no mask crosses from the host
    if ctx.stash is not None:
        ctx.stash["keep"] = keep
    return _masked(x, keep, p)


@backward("Dropout")
def dropout_backward(xp, grad, saved, params, attrs):
    """The forward's own mask: backward never draws again."""
    return [_masked(grad, saved.stash["keep"], attrs["p"]) if saved.training else grad], {}
