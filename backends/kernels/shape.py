"""Shape kernels: views wherever the layout allows, copies only for Concat and Pad."""

from __future__ import annotations

import math

from cnngraph.backends.kernels import kernel
from cnngraph.backends.kernels.windows import pad2d


@kernel("Flatten")
def flatten(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: a batch of 0 stays valid


@kernel("Reshape")
def reshape(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return x.reshape(x.shape[0], *attrs["shape"])


@kernel("Concat")
def concat(xp, inputs, params, attrs, ctx):
    return xp.concatenate(inputs, axis=attrs["axis"])


@kernel("Slice")
def slice_(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(attrs["axes"], attrs["starts"], attrs["ends"], attrs["steps"]):
        index[a] = slice(s, e, st)
    return x[tuple(index)]


@kernel("Pad")
def pad(xp, inputs, params, attrs, ctx):
    if attrs["mode"] == "constant":
        return pad2d(xp, inputs[0], attrs["padding"], attrs["value"])
    pt, pl, pb, pr = attrs["padding"]
    return xp.pad(inputs[0], ((0, 0), (0, 0), (pt, pb), (pl, pr)), mode=attrs["mode"])


@kernel("Identity")
def identity(xp, inputs, params, attrs, ctx):
    return inputs[0]
