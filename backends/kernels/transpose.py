"""Transpose as a view; its gradient is the inverse permutation of the output gradient."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("Transpose")
def transpose(xp, inputs, params, attrs, ctx):
    return xp.transpose(inputs[0], attrs["perm"])


@backward("Transpose")
def transpose_backward(xp, grad, saved, params, attrs):
    inverse = sorted(range(len(attrs["perm"])), key=lambda i: attrs["perm"][i])
    return [xp.transpose(grad, inverse)], {}
