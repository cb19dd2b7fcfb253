"""Cast: to int64, or to the float type the executor runs in (which its prepare step hands over as the plan)."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


def _float_type(xp, node, shapes, dtype):
    return dtype


@kernel("Cast", prepare=_float_type)
def cast(xp, inputs, params, attrs, ctx):
    return inputs[0].astype(xp.int64 if attrs["to"] == "int64" else ctx.plan)


@backward("Cast")
def cast_backward(xp, grad, saved, params, attrs):
    """An integer on one side or the other: nothing flows back."""
    return [None], {}
