"""Add and Mul kernels: numpy broadcasting, accumulating in place where the shape allows.

Their gradients are summed back over the axes an input was broadcast along.
"""

from __future__ import annotations

from cnngraph.backends.kernels import ANY_LAYOUT, backward, kernel


def _fits(target: tuple, shape: tuple) -> bool:
    """Whether ``shape`` broadcasts to ``target`` without growing it (so += works)."""
    return len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape[::-1], target[::-1]))


@kernel("Add", layouts=ANY_LAYOUT)  # channels-last only when its inputs share one shape
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


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast, giving back ``shape``."""
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(shape) if size == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes).reshape(shape) if axes else grad


@backward("Add")
def add_backward(xp, grad, saved, params, attrs):
    return [_unbroadcast(grad, shape) for shape in saved.shapes], {}


@backward("Mul", keeps=("inputs",))
def mul_backward(xp, grad, saved, params, attrs):
    a, b = saved.inputs
    return [_unbroadcast(grad * b, a.shape), _unbroadcast(grad * a, b.shape)], {}
