"""Add and Mul kernels: numpy broadcasting, accumulating in place where the shape allows."""

from __future__ import annotations

from cnngraph.backends.kernels import kernel


def _fits(target: tuple, shape: tuple) -> bool:
    """Whether ``shape`` broadcasts to ``target`` without growing it (so += works)."""
    return len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape[::-1], target[::-1]))


@kernel("Add")
def add(xp, inputs, params, attrs, ctx):
    out = inputs[0] + inputs[1]
    for x in inputs[2:]:
        if _fits(out.shape, x.shape):
            out += x
        else:
            out = out + x
    return out


@kernel("Mul")
def mul(xp, inputs, params, attrs, ctx):
    return inputs[0] * inputs[1]
