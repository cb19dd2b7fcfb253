"""Tile, and its gradient: the copies' gradients summed back onto the one they came from."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("Tile")
def tile(xp, inputs, params, attrs, ctx):
    return xp.tile(inputs[0], (1, *attrs["repeats"]))


@backward("Tile")
def tile_backward(xp, grad, saved, params, attrs):
    """Along each axis the output is ``repeats`` copies one after another: split it (copies outer), sum them."""
    shape = saved.shapes[0]
    split = [shape[0]]
    for r, d in zip(attrs["repeats"], shape[1:]):
        split += [r, d]
    return [grad.reshape(tuple(split)).sum(axis=tuple(range(1, len(split), 2)))], {}
