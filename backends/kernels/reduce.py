"""Reductions over per-sample axes and their gradients: spread back evenly (mean), as is (sum), or
to the positions that hold the extremum, shared equally among ties (max, min; as torch's amax)."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


def _kept(grad, shape, axes):
    """``grad`` shaped with the reduced axes as size 1, so it broadcasts against the input."""
    return grad.reshape(tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _spread(xp, grad, shape, axes):
    """``grad`` copied over every position of the reduced axes (a fresh array: gradients are summed in place)."""
    return _kept(grad, shape, axes) + xp.zeros(shape, dtype=grad.dtype)


def _reduction(method: str):
    def reduce(xp, inputs, params, attrs, ctx):
        return getattr(inputs[0], method)(axis=attrs["axes"], keepdims=attrs["keepdims"])

    return reduce


for _op, _method in (("ReduceMean", "mean"), ("ReduceSum", "sum"), ("ReduceMax", "max"), ("ReduceMin", "min")):
    kernel(_op)(_reduction(_method))


@backward("ReduceSum")
def reduce_sum_backward(xp, grad, saved, params, attrs):
    return [_spread(xp, grad, saved.shapes[0], attrs["axes"])], {}


@backward("ReduceMean")
def reduce_mean_backward(xp, grad, saved, params, attrs):
    shape = saved.shapes[0]
    count = 1
    for a in attrs["axes"]:
        count *= shape[a]
    return [_spread(xp, grad / count, shape, attrs["axes"])], {}


def _extremum_backward(xp, grad, saved, params, attrs):
    x, axes = saved.inputs[0], attrs["axes"]
    hit = (x == _kept(saved.output, x.shape, axes)).astype(grad.dtype)
    share = hit / hit.sum(axis=axes, keepdims=True)
    return [share * _kept(grad, x.shape, axes)], {}


backward("ReduceMax", keeps=("inputs", "output"))(_extremum_backward)
backward("ReduceMin", keeps=("inputs", "output"))(_extremum_backward)
